"""Run a sweep: the model scripts over seeds (and β, architecture or code size), each run a submitit
job into sweeps/<name>/<run>/ with its log in sweeps/<name>/logs/, then sweeps/<name>/summary.json
(every metric's mean and sd over the seeds) and the sweep's figures. Run it again to resume: finished
runs are skipped, interrupted ones continue with --resume.

    python Models/sweep.py seeds --jobs 2      # the four models, seeds 0-4 (README's table)
    python Models/sweep.py beta --jobs 2       # the two VAEs at 7 values of β, seeds 0-2
    python Models/sweep.py arch --jobs 2       # the four models, MLP and conv pairs, seeds 0-2, 10 epochs
    python Models/sweep.py latent --jobs 2     # AE and VAE at code sizes 2-64, seeds 0-2
    python Models/sweep.py warmup --jobs 2     # the 32-D VAE with and without a 10-epoch KL warm-up, seeds 0-2
    python Models/sweep.py likelihood --jobs 2 # the two VAEs, Bernoulli and continuous Bernoulli, seeds 0-2
    python Models/sweep.py beta --executor slurm --partition gpu --time 60   # one SLURM job array
    python Models/sweep.py beta --print-commands | parallel   # or any other scheduler
    python Models/sweep.py mine --models vae2 --seeds 0,1 --betas 0.5,2 --script-args "--epochs 5"
    python Models/sweep.py lr --models vae2 --variant base= --variant fast="--lr 3e-3"   # variants vs the first
"""
import argparse
import json
import shlex
import shutil
import signal
import sys
from pathlib import Path

from latentlab import UserError
from latentlab.checkpoints import resume_path
from latentlab.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, Parser, positive
from latentlab.sweep_reports import beta_figures, by_latent, variant_table
from latentlab.sweep_jobs import (PRESETS, SWEEPS_DIR, definition, make_executor, plan, records, run_all, shell_command,
                             summarize, thread_env, twin)

PROG = "sweep.py"


def _list(cast):
    def parse(text):
        try:
            return [cast(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    return parse


def _variant(text):
    name, sep, flags = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=FLAGS, e.g. warmup10=\"--beta-warmup 10\"")
    return name, shlex.split(flags)


def build_parser():
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help=f"sweep name: a preset ({', '.join(PRESETS)}) or a new folder name")
    p.add_argument("--models", type=_list(str), default=None, help="models, e.g. vae2,vae32 (default: the preset's)")
    p.add_argument("--seeds", type=_list(int), default=None, help="seeds, e.g. 0,1,2 (default: the preset's)")
    p.add_argument("--betas", type=_list(float), default=None, help="β values of the VAEs (default: the preset's)")
    p.add_argument("--archs", type=_list(str), default=None, help="architectures, e.g. mlp,conv (default: the preset's)")
    p.add_argument("--latents", type=_list(int), default=None,
                   help="code sizes of the 32-D models, e.g. 2,8,64 (default: the preset's)")
    p.add_argument("--variant", action="append", type=_variant, default=None, metavar='NAME="FLAGS"',
                   help="a named set of script flags, a group of runs of its own; repeat it: the first is the "
                        "reference of the sweep's table.md (default: the preset's, else none)")
    p.add_argument("--script-args", default=None,
                   help='further flags for every run, e.g. "--epochs 5" (default: the preset\'s, else none)')
    p.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: processes of this machine, --jobs at once; slurm: one job array on the "
                        "cluster SLURM_CONF names (default: local)")
    p.add_argument("--jobs", type=positive(int), default=1,
                   help="local runs at once, the cores split between them (default: 1)")
    slurm = p.add_argument_group("SLURM (with --executor slurm)")
    slurm.add_argument("--partition", default=None, help="partition to submit to (default: the cluster's)")
    slurm.add_argument("--time", type=positive(int), default=None,
                       help="minutes a run may take before it is requeued to resume (default: 60)")
    slurm.add_argument("--cpus-per-task", type=positive(int), default=2,
                       help="CPU cores, and torch threads, of each run (default: 2)")
    slurm.add_argument("--gpus-per-task", type=positive(int), default=None, help="GPUs of each run (default: none)")
    slurm.add_argument("--mem", default=None, help='memory of each run, e.g. "8G" (default: the cluster\'s)')
    slurm.add_argument("--array-parallelism", type=positive(int), default=None,
                       help="runs of the array at once (default: submitit's, 256)")
    p.add_argument("--print-commands", action="store_true",
                   help="print the commands of the runs still to do, one a line, and run nothing (default: off)")
    p.add_argument("--dir", type=Path, default=SWEEPS_DIR, help="where sweeps live (default: sweeps/)")
    return p


def finish(name, folder, runs, settings):
    """summary.json; table.md where it has variants; the β figures where it varies β, by_latent.png where it
    varies the code size."""
    summary = summarize(records(runs), name, settings)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{PROG}: {len(runs)} runs summarised in {folder / 'summary.json'}")
    if len(settings.get("variants", {})) > 1:
        (folder / "table.md").write_text(variant_table(summary) + "\n", encoding="utf-8")
        print(f"{PROG}: wrote table.md (each variant against {next(iter(settings['variants']))}) in {folder}")
    if len({r.beta for r in runs}) > 1:
        written = beta_figures(folder)
        print(f"{PROG}: drew {', '.join(written)} in {folder}")
    if len({r.latent for r in runs}) > 1:
        by_latent(summary, folder / "by_latent.png")
        print(f"{PROG}: drew by_latent.png in {folder}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    extra = None if args.script_args is None else shlex.split(args.script_args)
    variants = None if args.variant is None else dict(args.variant)
    settings = definition(args.name, args.models, args.seeds, args.betas, extra, args.archs, args.latents, variants)
    folder, runs = plan(args.name, settings, args.dir.expanduser().absolute())
    todo = [r for r in runs if not r.done()]
    if args.print_commands:
        print("\n".join(shell_command(r, args.jobs) for r in todo))
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps(settings, indent=1) + "\n")
    slurm = args.executor == "slurm"
    threads = args.cpus_per_task if slurm else int(thread_env(args.jobs)["OMP_NUM_THREADS"])
    for run in list(todo):
        source = twin(run, threads)
        if source is not None and not resume_path(run.out).exists():
            shutil.copytree(source, run.out)
            todo.remove(run)
            print(f"{PROG}: {run.name}: the same run is done in {source}; copied")
    where = "as one SLURM job array" if slurm else f"{args.jobs} at once"
    print(f"{PROG}: {args.name}: {len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to run "
          f"({where}, {threads} threads each; logs in {folder / 'logs'})", flush=True)
    sbatch = {"partition": args.partition, "time": args.time or 60, "cpus_per_task": args.cpus_per_task,
              "gpus_per_task": args.gpus_per_task, "mem": args.mem, "array_parallelism": args.array_parallelism}
    executor, limit = make_executor(args.executor, folder / "logs", args.jobs,
                                    **(sbatch if slurm else {"time": args.time}))
    failed = run_all(executor, limit, todo, threads) if todo else []
    if failed:
        raise UserError(f"{len(failed)} runs failed ({', '.join(failed)}); run the same command again to retry them")
    finish(args.name, folder, runs, settings)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except BrokenPipeError:  # --print-commands into head or a closed pipe
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished runs are kept and interrupted ones resume: run the same command again",
              file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
