#!/bin/sh
# A command handler: one process per task. The task's input (JSON) is on
# stdin, the result goes to stdout, progress lines to $BATCHD_PROGRESS_FD.
echo "0.5 counting words" >&"$BATCHD_PROGRESS_FD"
words=$(wc -w)
echo "{\"words\": $words, \"task\": $BATCHD_TASK}"
