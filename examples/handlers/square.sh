#!/bin/sh
# A persistent batchd handler in POSIX sh: squares integers, and counts
# the tasks this process has served (its state lives between tasks).
served=0
echo '{"ready": true}'
while IFS= read -r request; do
	# batchd writes "input" last: the rest of the line, less the final "}".
	n=${request#*\"input\":}
	n=${n%\}}
	case $n in
	'' | *[!0-9]*)
		echo '{"error": "input must be a non-negative integer"}'
		continue
		;;
	esac
	served=$((served + 1))
	echo '{"progress": 0.5, "message": "squaring"}'
	echo "{\"result\": {\"square\": $((n * n)), \"served\": $served}}"
done
