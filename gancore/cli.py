"""The ``gancore`` command: run, validate, inspect components and plugins, summarise networks."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gancore.catalogue import bounds, type_name
from gancore.errors import ConfigError, GancoreError
from gancore.interfaces import KINDS
from gancore.registry import Registry, default_registry

if TYPE_CHECKING:
    from gancore.checkpoint import Checkpoint

EXIT_USAGE = 2
_DOCS_OUT = Path("docs/reference")
T = TypeVar("T")

_EVAL_OPTIONS: list[tuple[str, str, type, str]] = [
    ("--num-gen", "N", int, "generated images, for every metric that counts them (fid, kid, is, pr, fd, ...)"),
    ("--num-real", "N", int, "real images, for every metric that counts them (default: the whole data set)"),
    ("--inception-weights", "PATH", str, "the FID Inception weights, pt_inception-2015-12-05-6726825d.pth "
     "(else $GANCORE_INCEPTION_WEIGHTS, else torch's hub folder)"),
    ("--vgg16-weights", "PATH", str, "torchvision's VGG16 weights for precision/recall, vgg16-397923af.pth "
     "(else $GANCORE_VGG16_WEIGHTS, else torch's hub folder)"),
    ("--backbone", "NAME", str, "the timm model of the fd metric, e.g. vit_small_patch14_dinov2"),
    ("--backbone-weights", "PATH", str, "the local weights file of --backbone (.safetensors or .pth)"),
    ("--image-size", "N", int, "input side of the fd backbone (DINOv2's timm configs say 518; Stein et al. use 224)"),
]
"""Options of ``gancore eval`` that set the metric parameter of the same name (dashes as underscores)."""


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="set a recipe value by its dotted path, e.g. train.batch_size=64 (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gancore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train a recipe, on one process or several (torch.distributed)")
    run.add_argument("recipe", type=Path, nargs="?",
                     help="the recipe; with --resume it defaults to the run's own recipe.yaml")
    _recipe_args(run)
    run.add_argument("--out", type=Path, help="run directory (default: runs/<recipe name>-<n>)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue a stopped run from its newest good checkpoint, in its own directory")
    run.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="data-parallel processes on this machine (torchrun; gloo on CPU, NCCL on GPUs); "
                          "for several machines start `torchrun ... -m gancore run` yourself")

    samp = sub.add_parser("sample", help="a grid of samples from a run's G EMA, as PNG")
    samp.add_argument("run_dir", type=Path)
    samp.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    samp.add_argument("--out", type=Path, default=Path("samples.png"), help="PNG to write (default samples.png)")
    samp.add_argument("--truncation", type=float, help="redraw latent components beyond ±T (BigGAN's trick)")
    samp.add_argument("--seed", type=int, default=0, help="seed of the latents and labels (default 0)")
    samp.add_argument("--class", dest="label", type=int, metavar="K",
                      help="for a conditional generator: every sample of class K (default: classes in turn)")
    samp.add_argument("--checkpoint", type=Path, help="a checkpoint file (default: the run's newest good one)")
    samp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    ev = sub.add_parser("eval", help="metrics of a run's G EMA (FID, KID, IS, precision/recall, FD, modes), "
                        "written to RUN_DIR/metrics.jsonl and TensorBoard")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--metric", action="append", default=[], metavar="NAME",
                    help="a metric by name, with its default parameters (repeatable; default: the recipe's metrics); "
                         "`gancore list metric` lists them")
    for option, meta, kind, text in _EVAL_OPTIONS:
        ev.add_argument(option, metavar=meta, type=kind, help=text)
    ev.add_argument("--download", action="store_true",
                    help="download missing published weights into torch's hub folder (needs internet)")
    ev.add_argument("--checkpoint", type=Path, help="a checkpoint file (default: the run's newest good one)")
    ev.add_argument("--batch", type=int, default=64, help="images per embedding batch (default 64)")
    ev.add_argument("--seed", type=int, help="seed of the generated samples (default: the recipe's)")
    ev.add_argument("--no-cache", action="store_true", help="embed the real data again instead of using the cache")
    ev.add_argument("--nproc", type=int, default=1, metavar="N",
                    help="data-parallel processes on this machine (each embeds a share; results do not change)")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    val = sub.add_parser("validate", help="check recipes without running them")
    val.add_argument("recipes", type=Path, nargs="+")
    _recipe_args(val)

    sub.add_parser("plugins", help="installed plugins: name, version, distribution, status, components")

    lst = sub.add_parser("list", help="registered components, of one kind or all")
    lst.add_argument("kind", nargs="?", choices=list(KINDS))

    show = sub.add_parser("show", help="one component: description and parameters")
    show.add_argument("kind", choices=list(KINDS))
    show.add_argument("name")

    sub.add_parser("schema", help="JSON Schema of a recipe, with every installed component's parameters")

    summ = sub.add_parser("summary", help="each network of a recipe: parameters, forward FLOPs per image, output")
    summ.add_argument("recipe", type=Path)
    _recipe_args(summ)
    summ.add_argument("--json", action="store_true", help="print JSON")

    chk = sub.add_parser("check", help="run the conformance kit on every component an installed plugin registers")
    chk.add_argument("plugin", metavar="DIST", help="a distribution (gancore-plugin-x; gancore for the built-ins) "
                                                    "or a plugin's entry-point name")
    chk.add_argument("--kind", choices=list(KINDS), help="only the components of this kind")
    chk.add_argument("--max-examples", type=int, metavar="N",
                     help="hypothesis examples per property (default: a few for networks, more for losses)")

    docs = sub.add_parser("docs", help="write the reference pages generated from the registry, the recipe schema "
                          "and recipes/ (run from the repository root)")
    docs.add_argument("--out", type=Path, default=_DOCS_OUT, metavar="DIR",
                      help=f"folder of the pages (default {_DOCS_OUT})")
    docs.add_argument("--check", action="store_true",
                      help="write nothing; exit 1, naming each page, when a page differs from what would be written")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args, default_registry())
    except GancoreError as exc:
        if os.environ.get("RANK", "0") == "0":  # in a multi-process run every process fails alike; one says why
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_run(args: argparse.Namespace, registry: Registry) -> int:
    from gancore import distributed
    from gancore import recipe as recipes
    from gancore.build import build

    if args.nproc < 1:
        raise GancoreError(f"--nproc {args.nproc}: give at least one process")
    if args.nproc > 1 and not distributed.launched_by_torchrun():
        return distributed.launch(args.nproc, _without_nproc(args.argv))
    if args.recipe is None and args.resume is None:
        raise GancoreError("give a recipe to run, or --resume RUN_DIR to continue a run")
    if args.resume is not None and args.out is not None:
        raise GancoreError("--resume continues a run in its own directory; leave out --out")
    source = args.recipe if args.recipe is not None else args.resume / "recipe.yaml"
    recipe, raw = recipes.load(source, registry, args.override)
    world = distributed.join(recipe.train.device)
    try:
        if recipe.train.batch_size % world.size:
            raise ConfigError([f"train.batch_size = {recipe.train.batch_size}: cannot be split evenly over "
                               f"{world.size} processes; use a multiple of {world.size}"], str(source))
        parts = _named(source, build, recipe, registry)
        from gancore.training import Trainer

        out, resumed = _agree(world, lambda: _prepare_run(args, source, raw))
        if world.main:
            print(f"training {source} on {world.size} process{'es' if world.distributed else ''} "
                  f"({world.device.type}) -> {out}")
        trainer = Trainer(recipe, parts, out, raw, world)
        if resumed is not None:
            trainer.resume(resumed)
            if trainer.nimg >= recipe.train.total_kimg * 1000:
                raise GancoreError(f"{out} already reached train.total_kimg = {recipe.train.total_kimg:g} "
                                   f"({trainer.kimg:.3f} kimg trained); to train longer, resume with "
                                   f"-o train.total_kimg=MORE")
            if world.main:
                print(f"resuming from {resumed.path} at {trainer.kimg:.3f} kimg")
        results = trainer.run()
    finally:
        distributed.leave()
    if not world.main:
        return 0
    if trainer.stop_signal is not None:
        name = signal.Signals(trainer.stop_signal).name
        again = f"gancore run {source} --resume {out}" + (f" --nproc {world.size}" if world.distributed else "")
        print(f"stopped by {name} at {trainer.kimg:.3f} kimg; checkpoint {trainer.last_checkpoint}; continue with "
              f"{again}", file=sys.stderr)
        return 128 + trainer.stop_signal
    for name, value in results.items():
        print(f"{name}: {value:.4g}")
    print(f"done: samples, log.jsonl, TensorBoard events, checkpoints and network-final.pt in {out}")
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line for each process: the same arguments, less ``--nproc``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _prepare_run(args: argparse.Namespace, source: Path, raw: dict) -> tuple[Path, Checkpoint | None]:
    """On rank 0: the run directory, and for a resume the newest checkpoint that passes (newer ones refused, said why)."""
    from gancore import checkpoint as checkpoints

    if args.resume is None:
        return _run_dir(args.out, source.stem), None
    if not args.resume.is_dir():
        raise GancoreError(f"--resume {args.resume}: no such run directory")
    found, refused = checkpoints.newest_good(args.resume, raw)
    for reason in refused:
        print(f"skipping a checkpoint: {reason}", file=sys.stderr)
    return args.resume, found


def _agree(world: Any, decide: Callable[[], T]) -> T:
    """Rank 0 decides (and may fail with a GancoreError); every process gets the same answer or the same error."""
    from gancore.distributed import broadcast

    answer, failure = None, None
    if world.main:
        try:
            answer = decide()
        except GancoreError as exc:
            failure = str(exc)
    answer, failure = broadcast((answer, failure), world)
    if failure is not None:
        raise GancoreError(failure)
    return answer


def _named(source: Path, step: Callable[..., T], *args: Any) -> T:
    """Run a build step; its problems are reported against the recipe file, like validation's."""
    try:
        return step(*args)
    except ConfigError as exc:
        raise ConfigError(exc.problems, str(source)) from None


def _run_dir(out: Path | None, stem: str) -> Path:
    """``--out`` if given (it must not hold files yet), else the first free ``runs/<stem>-<n>``."""
    try:
        if out is not None:
            if out.is_dir() and any(out.iterdir()):
                raise GancoreError(f"--out {out} already holds files; choose an empty or new directory")
            out.mkdir(parents=True, exist_ok=True)
            return out
        n = 0
        while True:
            candidate = Path("runs") / f"{stem}-{n}"
            try:
                candidate.mkdir(parents=True)
                return candidate
            except FileExistsError:
                n += 1
    except OSError as exc:
        where = out if out is not None else Path("runs")
        raise GancoreError(f"cannot make the run directory {where}: {exc.strerror or exc}; choose another "
                           f"with --out") from None


def cmd_eval(args: argparse.Namespace, registry: Registry) -> int:
    from gancore import distributed
    from gancore.build import build_data, build_metrics
    from gancore.evaluation import Evaluation, append_results
    from gancore.recipe import MetricRef
    from gancore.sampling import load_generator
    from gancore.scalars import tensorboard_scalars

    if args.nproc < 1:
        raise GancoreError(f"--nproc {args.nproc}: give at least one process")
    if args.nproc > 1 and not distributed.launched_by_torchrun():
        return distributed.launch(args.nproc, _without_nproc(args.argv))
    if args.batch < 1:
        raise GancoreError(f"--batch {args.batch}: give at least one image per batch")
    run = load_generator(args.run_dir, registry, args.checkpoint, args.device)
    G, source, kimg, recipe = run.generator, run.source, run.kimg, run.recipe
    world = distributed.join(args.device)
    try:
        refs = [MetricRef(name=name) for name in args.metric] or recipe.metrics
        if not refs:
            raise GancoreError(f"the recipe of {args.run_dir} names no metrics: choose some with --metric NAME "
                               f"(`gancore list metric`)")
        refs = _with_options(refs, args, registry)
        dataset = build_data(recipe, registry)
        metrics, found = build_metrics(registry, refs, dataset, lambda i: f"--metric {refs[i].name}")
        for i, param, message in found:  # the first problem, as the command line named the metric
            where = "" if param else f"; the run's data is {recipe.data.name!r}"
            raise GancoreError(f"--metric {refs[i].name}: {message}{where}")
        evaluation = Evaluation.of_run(G, dataset, recipe, world, args.batch)
        if args.seed is not None:
            evaluation.seed = args.seed
        if args.no_cache:
            evaluation.cache = None
        entries = []
        for ref, metric in metrics:
            start = time.perf_counter()
            values = distributed.broadcast(metric.compute(evaluation), world)
            entries.append({"metric": ref.name, "params": ref.params, "kimg": round(kimg, 3), "results": values,
                            "network": str(source), "processes": world.size,
                            "seconds": round(time.perf_counter() - start, 2)})
    finally:
        distributed.leave()
    if not world.main:
        return 0
    for entry in entries:
        print(f"{entry['metric']}: " + ", ".join(f"{k} {v:.6g}" for k, v in entry["results"].items()))
    written = append_results(args.run_dir, entries)
    tensorboard_scalars(args.run_dir, kimg, {f"Metrics/{e['metric']}/{k}": v for e in entries
                                             for k, v in e["results"].items()})
    print(f"{source} at {kimg:.3f} kimg; results appended to {written}")
    return 0


def _with_options(refs: list[Any], args: argparse.Namespace, registry: Registry) -> list[Any]:
    """The metrics with eval's weight options set on every metric that has the parameter; an option that
    no metric takes is an error (it would be silently ignored)."""
    given = {option[2:].replace("-", "_"): getattr(args, option[2:].replace("-", "_"))
             for option, _, _, _ in _EVAL_OPTIONS}
    given = {k: v for k, v in given.items() if v is not None}
    if args.download:
        given["download"] = True
    used: set[str] = set()
    result = []
    for ref in refs:
        fields = registry.get("metric", ref.name).params.model_fields
        taken = {k: v for k, v in given.items() if k in fields}
        used.update(taken)
        result.append(ref.model_copy(update={"params": {**ref.params, **taken}}))
    unused = sorted(set(given) - used - {"download"})
    if unused:
        names = ", ".join(ref.name for ref in refs)
        raise GancoreError(f"--{unused[0].replace('_', '-')} applies to none of the metrics asked for ({names})")
    return result


def cmd_validate(args: argparse.Namespace, registry: Registry) -> int:
    from gancore import recipe as recipes

    failed = 0
    for path in args.recipes:
        try:
            recipes.load(path, registry, args.override)
            print(f"{path}: ok")
        except GancoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return EXIT_USAGE if failed else 0


def cmd_plugins(args: argparse.Namespace, registry: Registry) -> int:
    for info in registry.plugins.values():
        dist = f"{info.distribution} {info.version}".strip()
        print(f"{info.name}  [{dist}]  {info.status}")
        if info.error:
            print(f"    error: {info.error}")
        if info.components:
            print(f"    {', '.join(info.components)}")
    return 0


def cmd_list(args: argparse.Namespace, registry: Registry) -> int:
    specs = registry.list(args.kind)
    width = max((len(s.name) for s in specs), default=0)
    kind = None
    for spec in specs:
        if spec.kind != kind and not args.kind:
            print(f"{spec.kind}:")
        kind = spec.kind
        indent = "" if args.kind else "  "
        print(f"{indent}{spec.name:<{width}}  {spec.description}  [{spec.plugin}]")
    return 0


def cmd_show(args: argparse.Namespace, registry: Registry) -> int:
    spec = registry.get(args.kind, args.name)
    print(f"{spec.kind} {spec.name}  (plugin {spec.plugin})")
    print(f"  {spec.description}")
    schema = spec.params.model_json_schema()
    props = schema.get("properties", {})
    if not props:
        print("  parameters: none")
    else:
        print("  parameters:")
    required = set(schema.get("required", []))
    for name, field in spec.params.model_fields.items():
        prop = props.get(name, {})
        kind = type_name(prop)
        default = "required" if name in required else f"default {field.default!r}"
        limits = bounds(prop)
        line = f"    {name}: {kind} ({default}{', ' + limits if limits else ''})"
        if field.description:
            line += f"  {field.description}"
        print(line)
    return 0


def cmd_check(args: argparse.Namespace, registry: Registry) -> int:
    from gancore.conformance import ConformanceError, NotCheckable, check_component, components_of, examples

    if args.max_examples is not None and args.max_examples < 1:
        raise GancoreError(f"--max-examples {args.max_examples}: give at least 1")
    found = [(k, n) for k, n in components_of(registry, args.plugin) if args.kind in (None, k)]
    if not found:
        raise GancoreError(f"{args.plugin} registers no {args.kind or 'component'}")
    counts = {"ok": 0, "FAIL": 0, "skip": 0}
    for kind, name in found:
        for params in examples(registry, kind, name):
            start = time.perf_counter()
            label = f"{kind}:{name} {json.dumps(params)}"
            try:
                report = check_component(kind, name, params, registry=registry, max_examples=args.max_examples)
            except ConformanceError as exc:
                status, detail = "FAIL", "\n      ".join(str(exc).splitlines())
            except ConfigError as exc:  # the plugin's own declared example does not validate
                status, detail = "FAIL", f"the example's parameters are refused: {exc}"
            except NotCheckable as exc:
                status, detail = "skip", f"not checkable: {exc}"
            else:
                status = "ok"
                detail = f"{len(report.clauses)} clauses hold" + "".join(f"; {n}" for n in report.notes)
            counts[status] += 1
            print(f"{status:4}  {label}  ({time.perf_counter() - start:.1f} s)\n      {detail}", flush=True)
    print(f"{counts['ok']} conform, {counts['FAIL']} fail, {counts['skip']} not checked")
    return 1 if counts["FAIL"] else 0


def cmd_schema(args: argparse.Namespace, registry: Registry) -> int:
    from gancore.recipe import json_schema

    print(json.dumps(json_schema(registry), indent=2))
    return 0


def cmd_summary(args: argparse.Namespace, registry: Registry) -> int:
    from gancore import recipe as recipes
    from gancore.build import build_networks
    from gancore.summary import summarize

    recipe, _ = recipes.load(args.recipe, registry, args.override)
    nets = _named(args.recipe, build_networks, recipe, registry)
    info = summarize(nets.generator, nets.discriminator)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for role, row in info.items():
        print(f"{role:<13} {row['name']:<24} params {row['params']:>12,}  "
              f"FLOPs/image {row['flops_per_image']:>14,}  output {tuple(row['output_shape'])}")
    return 0


def cmd_docs(args: argparse.Namespace, registry: Registry) -> int:
    """Write docs/reference's generated pages; with --check only report, so CI fails on pages left stale."""
    from gancore.catalogue import reference_pages, stale_pages

    pages = reference_pages(registry, Path("recipes"))
    stale = stale_pages(pages, args.out)
    if args.check:
        again = "gancore docs" + ("" if args.out == _DOCS_OUT else f" --out {args.out}")
        for path in stale:
            print(f"{path} is out of date; run `{again}`", file=sys.stderr)
        if not stale:
            print(f"{args.out}: {', '.join(pages)} are current")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(pages[path.name], encoding="utf-8")
        print(f"wrote {path}")
    if not stale:
        print(f"{args.out}: {', '.join(pages)} are current")
    return 0


def cmd_sample(args: argparse.Namespace, registry: Registry) -> int:
    from gancore.sampling import load_generator, sample_grid

    run = load_generator(args.run_dir, registry, args.checkpoint, args.device)
    written = sample_grid(run.generator, args.n, args.out, seed=args.seed, truncation=args.truncation, label=args.label)
    print(f"{args.n} samples from {run.source} -> {written}")
    return 0


COMMANDS = {"run": cmd_run, "sample": cmd_sample, "eval": cmd_eval, "validate": cmd_validate, "plugins": cmd_plugins, "list": cmd_list,
            "show": cmd_show, "schema": cmd_schema, "check": cmd_check, "summary": cmd_summary, "docs": cmd_docs}
