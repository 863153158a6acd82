/*
 * ckpt: the checkpointer, a process of the server's own that copies the
 * database's WAL back into the database file, so that the server's one
 * thread never waits for those fsyncs (store.h, "Checkpoints").
 *
 * The server starts it (its own binary, "batchd __checkpointer", in a
 * clean process: a process forked from one holding the database must not
 * open it again) the first time the WAL passes STORE_CHECKPOINT_FRAMES
 * pages, and asks it for a checkpoint after each COMMIT that finds the
 * WAL that long while it is not already at one. While the server writes
 * without a pause, no checkpoint can reach the WAL's end, so SQLite never
 * starts the WAL over and it keeps growing; past CKPT_SELF_FRAMES pages
 * the server checkpoints itself, as SQLite would (by then the
 * checkpointer has copied all but the newest pages: a short one). It
 * does so too when the checkpointer cannot run, and restarts one that
 * ended at most once a second.
 */
#ifndef BATCHD_CKPT_H
#define BATCHD_CKPT_H

#include "../db/store.h"
#include "loop.h"

/* 64 MiB of 4 KiB pages. */
#define CKPT_SELF_FRAMES 16384

struct ckpt;

/* Takes over store's checkpoints (store_on_wal). db is the database's
 * path; the checkpointer runs the binary this process was started from.
 * Never fails: without a checkpointer, the server checkpoints itself. */
struct ckpt *ckpt_new(struct loop *loop, struct store *store, const char *db);
/* Gives checkpoints back to SQLite and ends the checkpointer, waiting for
 * the checkpoint it is running. Before store_close: the server's
 * connection must be the last, to leave the database whole, without a
 * WAL. */
void ckpt_free(struct ckpt *c);
/* Reaps the checkpointer if it has ended: before pool_reap, which reaps
 * every child it finds. */
void ckpt_reap(struct ckpt *c);

/* The checkpointer's main: argv is { "__checkpointer", DB, SERVER_PID }
 * and the server's socket is fd 3. Returns the exit status. */
int ckpt_main(int argc, char **argv);

#endif
