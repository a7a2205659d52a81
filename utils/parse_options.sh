# parse_options.sh: command-line options for recipe scripts (Kaldi style).
#
# Source it after giving every option a default value:
#     nj=4
#     use_gpu=false
#     help_message="Usage: $0 [options] <data-dir>"
#     . utils/parse_options.sh
#
# Then `--nj 8` or `--nj=8` sets nj, dashes become underscores (`--use-gpu`
# sets use_gpu), and `--config conf/x.conf` sources a file of assignments;
# config files are read before the other options, so the command line wins
# wherever --config appears. A variable whose default is true or false only
# takes true or false. An option with no variable behind it is an error.
# `--help` / `-h` prints $help_message and exits 0. Parsing stops at the first
# word that is not an option (or after `--`), leaving the positional
# arguments in "$@". Works under `set -euo pipefail`.

# Config files first, so that explicit options override them.
__po_args=("$@")
for ((__po_i = 0; __po_i < ${#__po_args[@]}; __po_i++)); do
  __po_arg=${__po_args[__po_i]}
  case "${__po_arg}" in
    --) break ;;
    --config=*) __po_conf=${__po_arg#--config=} ;;
    --config) __po_conf=${__po_args[__po_i + 1]-} ; __po_i=$((__po_i + 1)) ;;
    --*=*) continue ;;
    --*) __po_i=$((__po_i + 1)); continue ;;   # skip the option's value
    -h) continue ;;
    *) break ;;
  esac
  if [ -z "${__po_conf}" ]; then
    echo "$0: --config needs a file name" >&2
    exit 1
  fi
  if [ ! -r "${__po_conf}" ]; then
    echo "$0: cannot read config file '${__po_conf}' (given with --config)" >&2
    exit 1
  fi
  # shellcheck disable=SC1090
  . "${__po_conf}"
done

while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      if [ -n "${help_message:-}" ]; then
        printf '%s\n' "${help_message}"
      else
        echo "$0: no help message; read the variables at the top of the script for its options"
      fi
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      __po_name=${1%%=*}
      __po_value=${1#*=}
      shift
      ;;
    --*)
      __po_name=$1
      if [ $# -lt 2 ]; then
        echo "$0: option $1 needs a value" >&2
        exit 1
      fi
      __po_value=$2
      shift 2
      ;;
    *)
      break
      ;;
  esac
  __po_opt=${__po_name}
  __po_name=${__po_name#--}
  __po_name=${__po_name//-/_}
  [ "${__po_name}" = config ] && continue   # already sourced above
  if ! [[ "${__po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__po_name+set}" ]; then
    echo "$0: invalid option ${__po_opt} (the script has no variable '${__po_name}'; try --help)" >&2
    exit 1
  fi
  __po_old=${!__po_name}
  if [ "${__po_old}" = true ] || [ "${__po_old}" = false ]; then
    if [ "${__po_value}" != true ] && [ "${__po_value}" != false ]; then
      echo "$0: option ${__po_opt} takes true or false, got '${__po_value}'" >&2
      exit 1
    fi
  fi
  # An empty --cmd is nearly always a scripting error (an unset variable).
  if [ "${__po_name}" = cmd ] && [ -z "${__po_value}" ]; then
    echo "$0: empty value for --cmd" >&2
    exit 1
  fi
  printf -v "${__po_name}" '%s' "${__po_value}"
done

unset __po_args __po_i __po_arg __po_conf __po_name __po_value __po_opt __po_old
true
