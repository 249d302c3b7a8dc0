#!/bin/bash
# slurm/train.sh: one `cltt train` run as a Slurm job that survives its time limit and
# preemption: near the limit the trainer saves a checkpoint, the job is requeued, and the next
# run continues from that checkpoint (train.resume=auto).
#
#   mkdir -p logs          # Slurm fails a job whose output folder is missing, leaving no log
#   sbatch [sbatch options] slurm/train.sh RECIPE [key.sub=value ...]
#   sbatch -p gpu --gpus-per-node=1 -A r00000 --time=2-00:00:00 slurm/train.sh recipes/quickstart.yaml
#
# Options given to sbatch on the command line override the #SBATCH lines below.
# Environment (sbatch passes the submitting shell's environment on):
#   CLTT_COMMAND          how to run cltt [cltt]; split on spaces: "python -m cltt",
#                         "/path/to/venv/bin/cltt"
#   CLTT_APPTAINER_IMAGE  run it as `apptainer exec --nv IMAGE CLTT_COMMAND ...` (image or SIF)
#   CLTT_APPTAINER_ARGS   more `apptainer exec` options, split on spaces ("--bind /scratch")
#   CLTT_STAGE            a frames root or packed store (cltt pack) to copy to node-local disk
#                         first; the run trains from the copy (data.root=COPY), removed at exit.
#                         A store is a few large files: it copies at disk speed, where a folder of
#                         millions of JPEGs takes hours on a parallel file system.
#   CLTT_SCRATCH          where the copy goes [$TMPDIR, else /tmp]
#
# How the requeue works: the trainer catches SIGUSR1 (the warning below), SIGUSR2 and SIGTERM,
# finishes its step and writes a checkpoint. After a warning (USR1/USR2, not the TERM that
# scancel sends) it calls `scontrol requeue` itself where it can and exits 0 (Slurm then ends this script and queues the job again). Inside a container there
# is no scontrol: it exits 75 ("requeue me") and this script requeues the job from the host.
# Each run appends to the same log (--open-mode=append); SLURM_RESTART_COUNT counts the
# restarts (unset on the first run).
#
# --signal=USR1@120, deliberately without "B:": B: sends the warning to this batch shell only,
# and bash runs a trap only after the foreground `srun` returns, i.e. after the trainer has
# already been killed at the limit. Without B: Slurm signals the job steps, so the trainer
# started by `srun` hears it. Slurm checks limits every 30 s, so the warning comes 120-150 s
# before the limit: long enough for a step plus a checkpoint. The requeued job starts again
# with its full --time.
#
#SBATCH --job-name=cltt-train
#SBATCH --output=logs/%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=USR1@120
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
# Site settings, to give on the sbatch command line or to uncomment (## is ignored):
##SBATCH --partition=gpu
##SBATCH --gpus-per-node=1
##SBATCH --account=r00000
##SBATCH --mem=64G
set -euo pipefail

readonly REQUEUE_EXIT=75   # cltt.engine.preemption.REQUEUE_EXIT_CODE

if [ "$#" -lt 1 ]; then
    echo "usage: sbatch [sbatch options] slurm/train.sh RECIPE [key.sub=value ...]" >&2
    exit 2
fi
recipe=$1
shift

read -r -a cmd <<<"${CLTT_COMMAND:-cltt}"
if [ "${#cmd[@]}" -eq 0 ]; then
    echo "train.sh: CLTT_COMMAND is empty" >&2
    exit 2
fi
if [ -n "${CLTT_APPTAINER_IMAGE:-}" ]; then
    read -r -a apptainer_args <<<"${CLTT_APPTAINER_ARGS:-}"
    cmd=(apptainer exec --nv "${apptainer_args[@]}" "$CLTT_APPTAINER_IMAGE" "${cmd[@]}")
fi
if ! command -v "${cmd[0]}" >/dev/null 2>&1; then
    echo "train.sh: '${cmd[0]}' not found on PATH; set CLTT_COMMAND (e.g. /path/to/venv/bin/cltt)" >&2
    exit 2
fi

# DataLoader workers: every CPU of the task but one, which the training loop keeps.
cpus=${SLURM_CPUS_PER_TASK:-1}
workers=$((cpus > 1 ? cpus - 1 : 0))

# The id that requeues this job and only it: in an array, `scontrol requeue $SLURM_JOB_ID` of
# the task whose id equals the array's requeues the whole array and kills its siblings.
if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    job="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
else
    job=${SLURM_JOB_ID:-}
fi

stage_args=()
if [ -n "${CLTT_STAGE:-}" ]; then
    if [ ! -d "$CLTT_STAGE" ]; then
        echo "train.sh: CLTT_STAGE=$CLTT_STAGE is not a folder; give a frames root or a store made by cltt pack" >&2
        exit 2
    fi
    stage_dir="${CLTT_SCRATCH:-${TMPDIR:-/tmp}}/cltt-${job:-$$}"
    stage="$stage_dir/$(basename "$CLTT_STAGE")"
    mkdir -p "$stage"
    trap 'rm -rf "$stage_dir"' EXIT
    started=$(date +%s)
    if command -v rsync >/dev/null 2>&1; then
        rsync -a "$CLTT_STAGE/" "$stage/"
    else
        cp -a "$CLTT_STAGE/." "$stage/"
    fi
    echo "train.sh: staged $CLTT_STAGE to $stage: $(find "$stage" -type f | wc -l) files, $(du -sh "$stage" | cut -f1), $(($(date +%s) - started)) s"
    stage_args=("data.root=$stage")
    if [ -n "${CLTT_APPTAINER_IMAGE:-}" ]; then
        cmd=("${cmd[@]:0:2}" --bind "$stage_dir" "${cmd[@]:2}")  # apptainer exec --bind STAGE ...
    fi
fi

# Only the job steps should get USR1 (see above). If this shell gets one anyway (B:USR1, or
# `scancel --full -s USR1`), an untrapped signal would end it before it can requeue.
trap 'echo "train.sh: the batch shell got SIGUSR1; the trainer should get it from --signal=USR1@N (no B:)" >&2' USR1
# SIGTERM is deliberately not trapped: a plain `scancel` sends it, and must end the job.

export PYTHONUNBUFFERED=1
echo "train.sh: job ${job:-?} on $(hostname -s), run $((${SLURM_RESTART_COUNT:-0} + 1)), $(date '+%F %T')"
echo "train.sh: ${cmd[*]} train $recipe train.resume=auto data.num_workers=$workers $* ${stage_args[*]+${stage_args[*]}}"

# srun makes the trainer a job step, so --signal=USR1@N reaches it. Slurm 22.05 to 23.02's srun
# does not take --cpus-per-task from the job (the release notes say so; 23.11 does again):
# pass it, so that where tasks are bound to CPUs the trainer gets all of its CPUs, not one.
# The trainer also writes its exit code to CLTT_EXIT_CODE_FILE: under torchrun
# (CLTT_COMMAND="torchrun --nproc-per-node 4 -m cltt") a worker's 75 ("saved, requeue me") comes
# out of torchrun as 1, and only the file tells a requeue from a failure.
export CLTT_EXIT_CODE_FILE="${TMPDIR:-/tmp}/cltt-exit-${job:-nojob}-$$"
rm -f "$CLTT_EXIT_CODE_FILE"
rc=0
srun --cpus-per-task="$cpus" "${cmd[@]}" train "$recipe" train.resume=auto "data.num_workers=$workers" "$@" ${stage_args[@]+"${stage_args[@]}"} || rc=$?
if [ "$rc" -ne 0 ] && [ -f "$CLTT_EXIT_CODE_FILE" ] && [ "$(cat "$CLTT_EXIT_CODE_FILE")" = "$REQUEUE_EXIT" ]; then
    echo "train.sh: $(basename "${cmd[0]}") exited $rc; the trainer itself exited $REQUEUE_EXIT (saved, requeue me)"
    rc=$REQUEUE_EXIT
fi
rm -f "$CLTT_EXIT_CODE_FILE"

if [ "$rc" -eq "$REQUEUE_EXIT" ]; then
    if [ -z "$job" ]; then
        echo "train.sh: the trainer asked to be requeued, but this is not a Slurm job" >&2
        exit "$rc"
    fi
    echo "train.sh: checkpoint saved; requeueing job $job ($(date '+%F %T'))"
    if ! scontrol requeue "$job"; then
        echo "train.sh: scontrol requeue $job failed (was the job submitted with --no-requeue?); resubmit slurm/train.sh with the same arguments to resume" >&2
        exit "$rc"
    fi
    exit 0   # usually not reached: Slurm ends this script once the job is requeued
fi
echo "train.sh: trainer exited $rc ($(date '+%F %T'))"
exit "$rc"
