#!/bin/bash
# A Slurm array: N copies of `dcmtools anonymize`, one shard each (--shard comes from
# SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT), one journal per shard, so that a
# copy that dies is simply submitted again (`sbatch --array=K ...`) and resumes.
#SBATCH --job-name=anonymize
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=2G
#SBATCH --output=logs/anonymize-%a.log
set -euo pipefail
ARCHIVE=${ARCHIVE:-/archive}
OUT=${OUT:-/anon}
mkdir -p "$OUT/journals"
dcmtools anonymize --key-file "$HOME/team.key" -o "$OUT" -j "$SLURM_CPUS_PER_TASK" \
    --journal "$OUT/journals/anon-$SLURM_ARRAY_TASK_ID.journal" "$ARCHIVE" > "$OUT/journals/anon-$SLURM_ARRAY_TASK_ID.jsonl"
# When all are done: dcmtools journal status "$OUT"/journals/*.journal
