# Options and helpers every recipes/<corpus>/run.sh shares (in the manner of Kaldi's
# utils/parse_options.sh). Source it after setting the option defaults:
#   . ../common/defaults.sh; stop_stage=12; corpus_dir=
#   . ../common/options.sh "$@"
# `--foo-bar VALUE` sets foo_bar, for each variable run.sh set before sourcing this; a variable
# whose default is `false` is a flag: `--foo-bar` alone sets it to true. Anything else is an
# unknown option. Defines log MESSAGE, run STAGE (is STAGE within --stage/--stop-stage?) and
# local_py CORPUS ARGS (python -m local.CORPUS ARGS: the corpus's download and prepare, local/).

while [ $# -gt 0 ]; do
  _opt_var=${1#--}
  _opt_var=${_opt_var//-/_}
  if [[ $1 != --* || ! $_opt_var =~ ^[a-z][a-z0-9_]*$ || -z ${!_opt_var+set} ]]; then
    echo "unknown option $1" >&2
    exit 1
  fi
  if [ "${!_opt_var}" = false ]; then
    printf -v "$_opt_var" true
    shift
  else
    [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; exit 1; }
    printf -v "$_opt_var" '%s' "$2"
    shift 2
  fi
done
unset _opt_var

log() { echo "$(date '+%H:%M:%S') run.sh: $*"; }
run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
# the package local/ is in the checkout, two levels above the recipe dir
local_py() { PYTHONPATH="../..${PYTHONPATH:+:$PYTHONPATH}" python -m "local.$1" "${@:2}"; }
