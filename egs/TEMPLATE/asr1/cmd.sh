# How heavy stages run: every recipe links this file (like path.sh). Pick a backend with
# BLJUST_CMD_BACKEND; the launchers take Kaldi's options (--mem, --num-threads, --gpu,
# --max-jobs-run) and map them through
# conf/queue.conf or conf/slurm.conf, which you edit for your cluster. --mem is per CPU
# (slot): --mem 4G --num-threads 4 asks for 16G.
#   local: run.pl, on this machine
#   sge:   queue.pl, Sun/Univa Grid Engine (qsub)
#   slurm: slurm.pl, Slurm (sbatch)
cmd_backend=${BLJUST_CMD_BACKEND:-local}

case "${cmd_backend}" in
  local)
    export train_cmd="run.pl"
    export cuda_cmd="run.pl"
    export decode_cmd="run.pl"
    ;;
  sge)
    export train_cmd="queue.pl --mem 4G"
    export cuda_cmd="queue.pl --mem 4G --num-threads 4"
    export decode_cmd="queue.pl --mem 4G"
    ;;
  slurm)
    export train_cmd="slurm.pl --mem 4G"
    export cuda_cmd="slurm.pl --mem 4G --num-threads 4"
    export decode_cmd="slurm.pl --mem 4G"
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend '${cmd_backend}' (local, sge or slurm)" >&2
    return 1
    ;;
esac
