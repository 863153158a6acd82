/*
 * store_ckpt: checkpoints run by a process of their own. See store.h.
 *
 * A checkpoint in WAL mode copies the pages the WAL holds back into the
 * database file and syncs both: on this kind of disk two fdatasyncs of
 * 5-10 ms each. SQLite runs it inside the COMMIT that crosses its
 * threshold, so a server with one thread would stop serving for that
 * long. Run by a second connection, in another process, it goes on beside
 * the server's writes (a PASSIVE checkpoint takes no lock that a writer
 * or a reader waits for).
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

static int say(int fd, const char *line)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = write(fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int store_checkpoint_serve(int fd, const char *path)
{
	sqlite3 *db = NULL;
	char line[600];
	int rc = -1;

	/* Never creates the file: it is the server's, and exists. A first
	 * read puts the connection in WAL mode, as the file says. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
	    sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(line, sizeof(line), "error cannot open database %s: %s\n", path,
			 db ? sqlite3_errmsg(db) : "out of memory");
		say(fd, line);
		goto out;
	}
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		int frames = -1, copied = -1, r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			break;
		if (n < 0)
			goto out;
		r = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE,
					      &frames, &copied);
		/* BUSY: another checkpoint was running; nothing is wrong. */
		if (r == SQLITE_OK || r == SQLITE_BUSY)
			snprintf(line, sizeof(line), "ok %d %d\n", frames, copied);
		else
			snprintf(line, sizeof(line), "error %s\n", sqlite3_errmsg(db));
		if (say(fd, line) < 0)
			goto out;
	}
	rc = 0;
out:
	sqlite3_close(db);
	return rc;
}
