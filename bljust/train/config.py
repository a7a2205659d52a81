"""Training configuration: schema defaults < YAML file < command-line `--dotted.key value` overrides.

One loader for every training entry point (bljust.bin.train, ssft, train_superb,
pretrain_upstream); the sections, keys, types and defaults are the dataclasses of
bljust.train.schema. Every key is checked: an unknown key (with a "did you mean"),
a key the chosen method or optimiser/scheduler/loss does not read, and a value of the
wrong type are errors naming the file (or the command-line option) and the dotted key.
The resolved dictionary is what gets saved as output_dir/config.yaml, so a run can be
replayed from that file alone.
"""
from __future__ import annotations

import collections.abc
import copy
import dataclasses
import difflib
import logging
import re
import sys
import types
import typing
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union

import yaml

from bljust.train import schema as S

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    pass


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; a config means the number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def yaml_load(text) -> Any:
    return yaml.load(text, Loader=_Loader)


def parse_overrides(argv: Sequence[str]) -> List[Tuple[str, Any]]:
    """`--a.b 3 --c=x --flag true` -> [("a.b", 3), ("c", "x"), ("flag", True)]; values are YAML."""
    return [(k, v) for k, v, _ in _parse_overrides(argv)]


def _parse_overrides(argv: Sequence[str]) -> List[Tuple[str, Any, str]]:
    out: List[Tuple[str, Any, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) <= 2:
            raise ConfigError(f"command line: expected --key value, got '{arg}'")
        if "=" in arg:
            key, raw = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ConfigError(f"command line: option '{arg}' has no value")
            key, raw = arg[2:], argv[i + 1]
            i += 2
        try:
            val = yaml_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            val = raw
        out.append((key.replace("-", "_") if "." not in key else key, val, raw))
    return out


# ------------------------------------------------------------------ where each key came from
class _Sources:
    def __init__(self, file: Optional[str]) -> None:
        self.file = file or "defaults"
        self.cli: Dict[str, str] = {}  # dotted key -> the raw command-line text

    def __call__(self, path: str) -> str:
        path = path.rstrip(".")
        for k in self.cli:
            if k == path or path.startswith(k + "."):
                return f"command line (--{k})"
        for k in self.cli:
            if k.startswith(path + ".") and self.file == "defaults":
                return f"command line (--{k})"
        return self.file


def _err(src: _Sources, path: str, msg: str) -> ConfigError:
    path = path.rstrip(".")
    where = src(path)
    if where == f"command line (--{path})":
        return ConfigError(f"command line: --{path}: {msg}")
    return ConfigError(f"{where}: {path}: {msg}")


# ------------------------------------------------------------------ types
class _Mismatch(Exception):
    pass


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def type_name(tp: Any) -> str:
    """How docs and errors spell a type."""
    if tp is Any:
        return "any"
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        names = [type_name(a) for a in args]
        if type(None) in typing.get_args(tp):
            names.append("null")
        return " or ".join(names)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        return "a list of " + (f"{len(args)} " if args[-1] is not Ellipsis else "") + _plural(args[0])
    if origin in (list, collections.abc.Sequence):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _plural(tp: Any) -> str:
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(tp, type_name(tp))


def _coerce(v: Any, tp: Any) -> Any:
    """The value checked against `tp` (int accepted for float, lists for tuples); _Mismatch otherwise."""
    if tp is Any:
        return copy.deepcopy(v)
    if _is_union(tp):
        args = typing.get_args(tp)
        if v is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(v, a)
            except _Mismatch:
                pass
        raise _Mismatch(type_name(tp))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        if any(v == a and type(v) is type(a) for a in args):
            return v
        raise _Mismatch(type_name(tp))
    if tp is bool:
        if isinstance(v, bool):
            return v
    elif tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    elif tp is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    elif tp is str:
        if isinstance(v, str):
            return v
    elif origin is tuple:
        n = len(args) if args[-1] is not Ellipsis else None
        if isinstance(v, (list, tuple)) and (n is None or len(v) == n):
            return [_coerce(x, args[0]) for x in v]
    elif origin in (list, collections.abc.Sequence):
        if isinstance(v, str) and args and args[0] is str and origin is list:
            return v.split()  # "data/a data/b": the shell's way of giving a list
        if isinstance(v, (list, tuple)):
            return [_coerce(x, args[0]) if args else x for x in v]
    elif origin is dict or tp is dict:
        if isinstance(v, dict):
            return copy.deepcopy(v)
    raise _Mismatch(type_name(tp))


def _section_type(tp: Any) -> Tuple[Optional[type], bool]:
    """(the dataclass of a section-typed key, whether null is allowed)."""
    if dataclasses.is_dataclass(tp):
        return tp, False
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0], True
    return None, False


def hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls, vars(S))


def _plain(x: Any) -> Any:
    if dataclasses.is_dataclass(x):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ------------------------------------------------------------------ resolution
def _resolve(cls: type, base: Dict[str, Any], user: Any, path: str, src: _Sources, ctx: Dict[str, Any]) -> Dict[str, Any]:
    flds = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(user, dict):
        raise _err(src, path, f"expected a section with keys {', '.join(flds)}; got {user!r}")
    for k in user:
        if k not in flds:
            hint = _suggest(k, list(flds))
            if path + str(k) in MOVED:
                hint = f" ({MOVED[path + str(k)]})"
            raise _err(src, path + str(k), "unknown key" + hint)
    types_ = hints(cls)
    sel = getattr(cls, "SELECTOR", None)
    out: Dict[str, Any] = {}
    for name in sorted(flds, key=lambda n: n != sel):  # the selector first: other keys depend on it
        dotted, tp = path + name, types_[name]
        sec, nullable = _section_type(tp)
        if sec is not None:
            if name in user and user[name] is None and nullable:
                out[name] = None
            elif base.get(name) is None and name not in user:
                out[name] = None
            else:
                b = base.get(name) if base.get(name) is not None else _plain(sec())
                out[name] = _resolve(sec, b, user.get(name) or {}, dotted + ".", src, ctx)
        elif name in user:
            v = user[name]
            if dotted in src.cli and not isinstance(v, str) and _accepts_str(tp):
                v = src.cli[dotted]  # `--variant 0.30` means the text, not the number
            try:
                out[name] = _coerce(v, tp)
            except _Mismatch as e:
                hint = " (a string: write it without quotes)" if isinstance(v, str) and v.lower() in (
                    "true", "false", "yes", "no", "on", "off") and tp is bool else ""
                raise _err(src, dotted, f"expected {e}, got {v!r}{hint}") from None
        else:
            out[name] = copy.deepcopy(base.get(name))
        if not path:
            ctx[name] = out[name]
    if sel:
        own = sel in flds
        choice = out[sel] if own else ctx.get(sel)
        for name, f in flds.items():
            only = f.metadata.get("only")
            if only and choice not in only:
                if name in user:
                    who = (path + sel) if own else sel
                    raise _err(src, path + name, f"not used when {who} is '{choice}' (only when it is "
                                                 f"{' or '.join(sorted(only))}): remove it")
                if own and path:
                    out.pop(name, None)  # an optimiser's, schedule's or loss's keys: only the chosen one's
        if own and path:
            for k, v in getattr(cls, "VARIANT_DEFAULTS", {}).get(choice, {}).items():
                if out.get(k) is None:
                    out[k] = _plain(v)
            out = {k: v for k, v in out.items() if v is not None}  # unset: the library's own default
    return out


# keys that older configs (and saved config.yaml files) may still hold
MOVED = {"bilevel.grad_clip": "every trainer clips at trainer.grad_clip now",
         "trainer.stop_steps": "renamed trainer.max_steps: stop early, as in every trainer"}


def _accepts_str(tp: Any) -> bool:
    return tp is str or (_is_union(tp) and str in typing.get_args(tp))


def _check_train(conf: Dict[str, Any], src: _Sources) -> None:
    """What one key alone cannot say."""
    ub = conf["unlab_batching"]
    for k in ub:
        if ub[k] is None:
            ub[k] = conf["batching"][k]
    amp = conf["trainer"]["amp"]
    if conf["method"] == S.BILEVEL and amp == "fp16":
        raise _err(src, "trainer.amp", "the bilevel trainer supports none or bf16 (fp16 needs a loss scaler "
                                       "per level)")
    if amp != "none" and int(conf["ngpu"]) <= 0:
        logger.warning("trainer.amp %s has no effect without a GPU (ngpu 0): training runs in fp32", amp)
    if conf["method"] == S.BILEVEL:
        b = conf["bilevel"]
        try:
            S.PBGDConfig(**{k: b[k] for k in ("n1", "n2", "n3", "k", "gamma0", "gamma_max", "gamma_schedule",
                                              "normalize", "reuse_lower_grad", "penalty_ref")})
        except ValueError as e:
            raise _err(src, "bilevel", str(e)) from None
        fr = b["budget_fractions"]
        if min(fr) < 0 or sum(fr) <= 0:
            raise _err(src, "bilevel.budget_fractions", f"expected 3 non-negative numbers with a positive sum, "
                                                        f"got {fr}")


def _check_superb(conf: Dict[str, Any], src: _Sources, user: Dict[str, Any]) -> None:
    tr = user.get("trainer") if isinstance(user.get("trainer"), dict) else {}
    if "max_steps" in tr and "max_updates" not in tr:
        # max_steps once gave this trainer's schedule length: an old config must not silently change meaning
        raise _err(src, "trainer.max_steps", "stops early without changing the schedule; give the schedule's "
                                             "length as trainer.max_updates as well")


def _suggest(k: str, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(str(k), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else f" (known: {', '.join(known)})"


def _check_upstream(conf: Dict[str, Any], src: _Sources, user: Dict[str, Any]) -> None:
    """upstream.arch: a known name, or builder arguments (inline or in a YAML file) that the builders take."""
    import inspect

    from torchaudio.models import wav2vec2_model, wavlm_model

    from bljust.nets.upstream import ARCHS

    arch = conf["upstream"]["arch"]
    if arch is None:
        return
    if isinstance(arch, str) and not arch.endswith((".yaml", ".yml")):
        if arch not in ARCHS:
            raise _err(src, "upstream.arch", f"unknown architecture '{arch}'{_suggest(arch, sorted(ARCHS))}")
        return
    where, prefix = src("upstream.arch"), "upstream.arch."
    if isinstance(arch, str):
        try:
            with open(arch, encoding="utf-8") as f:
                arch = yaml_load(f)
        except OSError as e:
            raise _err(src, "upstream.arch", f"cannot read {arch}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise _err(src, "upstream.arch", f"{arch} is not valid YAML: {' '.join(str(e).split())}") from None
        where, prefix = conf["upstream"]["arch"], ""
        if not isinstance(arch, dict):
            raise ConfigError(f"{where}: expected a mapping of upstream builder arguments")
    known = ["kind", "normalize_waveform"] + [p for b in (wav2vec2_model, wavlm_model)
                                              for p in inspect.signature(b).parameters if p != "aux_num_out"]
    known = list(dict.fromkeys(known))
    for k in arch:
        if k not in known:
            raise ConfigError(f"{where}: {prefix}{k}: unknown upstream builder argument{_suggest(k, known)}")
    if arch.get("kind") not in ("hubert", "wavlm"):
        raise ConfigError(f"{where}: {prefix}kind: expected one of hubert, wavlm, got {arch.get('kind')!r}")


def _check_superb_all(conf: Dict[str, Any], src: _Sources, user: Dict[str, Any]) -> None:
    _check_superb(conf, src, user)
    _check_upstream(conf, src, user)


_CHECKS: Dict[type, Callable[..., None]] = {S.TrainConfig: lambda c, s, u: _check_train(c, s),
                                            S.SuperbConfig: _check_superb_all, S.SSFTConfig: _check_upstream,
                                            S.PretrainConfig: _check_upstream}


def resolve(user: Dict[str, Any], kind: str = "train", source: Optional[str] = None,
            cli: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The complete, checked config of entry point `kind` from a user's (partial) nested dict."""
    cls = S.SCHEMAS[kind]
    src = _Sources(source)
    src.cli = dict(cli or {})
    conf = _resolve(cls, _plain(cls()), user, "", src, {})
    if cls in _CHECKS:
        _CHECKS[cls](conf, src, user)
    return conf


def defaults(kind: str = "train") -> Dict[str, Any]:
    """Every key of entry point `kind` at its default (nested dicts)."""
    return _plain(S.SCHEMAS[kind]())


def load_config(path: Optional[str], overrides: Sequence[str] = (), kind: str = "train") -> Dict[str, Any]:
    """Schema defaults < YAML file `path` < `--dotted.key value` overrides, checked (ConfigError)."""
    user: Dict[str, Any] = {}
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                user = yaml_load(f) or {}
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the config: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections and keys")
    cli: Dict[str, str] = {}
    for key, val, raw in _parse_overrides(list(overrides)):
        parts, d = key.split("."), user
        for j, p in enumerate(parts[:-1]):
            if d.get(p) is None:
                d[p] = {}
            elif not isinstance(d[p], dict):
                raise ConfigError(f"command line (--{key}): {'.'.join(parts[:j + 1])} is not a section")
            d = d[p]
        d[parts[-1]] = val
        cli[key] = raw
    return resolve(user, kind, path, cli)


def save_config(conf: Dict[str, Any], path: str) -> None:
    from bljust.utils.fileio import atomic_write

    with atomic_write(path) as f:
        yaml.safe_dump(conf, f, sort_keys=False, default_flow_style=False)


def run_with_config(argv: Optional[List[str]], kind: str, doc: str, run: Callable[..., Any],
                    resume_option: bool = False) -> int:
    """The main() of a training entry point: `--config FILE [--verbose N] [--debug] [--dotted.key value ...]`
    (and `--resume true|false`, passed to run as resume=, with resume_option).

    Any error reaches the user as one line on stderr and exit status 1; --debug shows the traceback.
    """
    from bljust.utils.log import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(doc)
        return 0
    path, verbose, debug, rest = None, 1, False, []
    kwargs: Dict[str, Any] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith(("--config=", "--verbose=", "--resume=")):  # the --key=value form of the options
            argv[i:i + 1] = a.split("=", 1)
            continue
        if a == "--config" and i + 1 < len(argv):
            path, i = argv[i + 1], i + 2
        elif resume_option and a == "--resume" and i + 1 < len(argv):
            kwargs["resume"], i = argv[i + 1], i + 2
        elif a == "--verbose" and i + 1 < len(argv):
            verbose, i = int(argv[i + 1]), i + 2
        elif a == "--debug":
            nxt = argv[i + 1].lower() if i + 1 < len(argv) else ""
            debug = nxt != "false"
            i += 2 if nxt in ("true", "false") else 1
        else:
            rest.append(a)
            i += 1
    setup_logging(verbose)
    from bljust.utils import cli

    def body() -> None:
        if "resume" in kwargs:
            value = str(kwargs["resume"]).lower()
            if value not in ("true", "false"):
                raise ConfigError(f"--resume takes true or false, got '{kwargs['resume']}'")
            kwargs["resume"] = value == "true"
        run(load_config(path, rest, kind), verbose, **kwargs)

    return cli.run(body, debug)


def resolve_section(cls: type, conf: Optional[Dict[str, Any]], where: str) -> Dict[str, Any]:
    """One section (e.g. schema.SchedulerConfig) from a partial dict: defaults filled, keys and types checked."""
    return _resolve(cls, _plain(cls()), dict(conf or {}), where.rstrip(".") + ".", _Sources(None), {})
