/*
 * json: JSON values kept as they were written.
 *
 * cJSON reads every number into a double, so a value printed back from its
 * tree is not always the value that was sent: an id such as
 * 9007199254740993 comes back as 9007199254740992 (or, printed with 15
 * digits, as 9.00719925474099e+15), 1.0 comes back as 1. What batchd stores
 * of a task's input or a handler's result is instead the text as written,
 * made compact. These functions walk text that cJSON has already accepted
 * (cJSON checks it; these only copy it): a cJSON tree gives the structure,
 * the text gives the values, member by member in the same order.
 */
#ifndef BATCHD_JSON_H
#define BATCHD_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"

/*
 * Appends the JSON value at *p (white space before it skipped) to out, or
 * only skips it when out is NULL, and moves *p just past it. The copy is
 * compact and strict JSON whatever cJSON took: no white space outside
 * strings, the control characters in strings escaped, and a number outside
 * JSON's grammar (cJSON also reads 01, 1. and -.5) written as the number it
 * reads as. Every other number and string is copied byte for byte. Returns
 * 0, or -1 (with out holding a part) when the text at *p is not a JSON
 * value, which text cJSON parsed never is.
 */
int json_copy(struct buf *out, const char **p, const char *end);

/*
 * The length of the UTF-8 byte order mark s[0..len) starts with: 3, or 0
 * when it has none. Editors on Windows write one before JSON; cJSON skips
 * it, and so must anything that reads the same text.
 */
size_t json_bom(const char *s, size_t len);

/*
 * The offset of the first \u escape in the JSON text s[0..len) that cJSON
 * reads as a NUL, or -1. That is \u0000 (*zero set to 1), and a \u not
 * followed by 4 hex digits (*zero set to 0), which JSON does not allow
 * and cJSON takes for \u0000. A NUL ends a C string: "a\u0000b" would be
 * kept as "a".
 */
long json_nul_escape(const char *s, size_t len, int *zero);

/*
 * The number of elements in the array that member key of the object in
 * s[0..len) holds, counted before any parse, in one pass over the bytes
 * (so that a request of millions of tasks over the limit is refused without
 * building its tree); -1 when s is not an object with that member as an
 * array. The count is right for JSON text; for other text it is anything,
 * and the text is refused by the parser later. key is matched as written
 * (a key spelt with escapes is not found).
 */
long long json_array_member_len(const char *s, size_t len, const char *key);

/*
 * Parses s[0..len) (NUL-terminated at len) as one JSON value that batchd
 * can keep as written, into *doc (the caller deletes it). Returns JSON_KEPT,
 * or why not, *doc then NULL: JSON_NOT_JSON (not one value, a raw NUL, a
 * \u without 4 hex digits, not UTF-8), JSON_HOLDS_NUL (a \u0000, which
 * cJSON reads as the string's end), JSON_OUT_OF_RANGE (a number beyond a
 * double, such as 1e999). For what handlers outside batchd return.
 */
enum { JSON_KEPT, JSON_NOT_JSON, JSON_HOLDS_NUL, JSON_OUT_OF_RANGE };
int json_parse_kept(const char *s, size_t len, cJSON **doc);

/*
 * 1 if every number in v is finite. cJSON reads 1e999 as infinity, and a
 * number out of a double's range is refused by many JSON readers: batchd
 * neither accepts nor stores one (the text is kept as written).
 */
int json_all_finite(const cJSON *v);

/*
 * Appends v, the value cJSON read from the text at *p, as json_copy does
 * and moving *p the same way. Should the text not walk (never for text
 * cJSON parsed), or *p be NULL, appends v as cJSON prints it instead and
 * sets *p to NULL.
 */
void json_copy_of(struct buf *out, const cJSON *v, const char **p, const char *end);

/*
 * Appends v, a value inside root (or root itself), the tree cJSON read
 * from text[0..len) (a byte order mark first is skipped, as cJSON skips
 * it), as json_copy_of does: found in the text by its place in the tree.
 * For small documents: each step searches the tree.
 */
void json_text_of(struct buf *out, const cJSON *root, const cJSON *v, const char *text,
		  size_t len);

/*
 * Moves *p from the start of an array ('[', white space before it skipped)
 * or from just after one of its elements to the next element. Returns 1
 * when there is one, 0 at the array's end (*p past the ']'), -1 when the
 * text is not an array there.
 */
int json_next(const char **p, const char *end);

/*
 * Moves *p from the start of an object to the value of its member number n
 * (from 0, in the order written: cJSON keeps that order, and a member given
 * twice counts twice). Returns 0, or -1 when the object has no such member.
 */
int json_member(const char **p, const char *end, int n);

#endif
