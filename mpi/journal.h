/*
 * journal.h -- the engine's write-ahead journal of commits.
 *
 * Before rank 0 commits a finished task it writes the whole commit (task,
 * claim token, result, products, spawns) to STATE_DIR/journal/TASK_ID.json,
 * fsynced and renamed into place; after the commit it removes the entry.
 * A commit the database could not take (an outage, a restart) therefore
 * stays on disk and is replayed: on the next attempt while the engine runs,
 * and at the start of the next engine on the same state directory. Replays
 * are harmless twice over: a task already completed refuses a second
 * commit, and products are upserts.
 */
#ifndef CONTIMG_JOURNAL_H
#define CONTIMG_JOURNAL_H

#include "error.h"

#include <jansson.h>
#include <stddef.h>

typedef struct ct_journal ct_journal;

/* Opens (creating) the journal directory dir. */
ct_code ct_journal_open(const char *dir, ct_journal **out, ct_err *err);
void ct_journal_close(ct_journal *j);

/* Durably records entry (a JSON object with at least "task_id") . */
ct_code ct_journal_write(ct_journal *j, const char *task_id, const json_t *entry, ct_err *err);

/* Removes the entry of task_id (a missing one is fine). */
ct_code ct_journal_remove(ct_journal *j, const char *task_id, ct_err *err);

/* Every entry on disk, oldest first, as a JSON array (caller decrefs).
 * An entry that cannot be parsed (a torn write cannot happen, but a person
 * may have edited one) is moved aside to NAME.bad and reported on stderr. */
ct_code ct_journal_entries(ct_journal *j, json_t **entries, ct_err *err);

#endif
