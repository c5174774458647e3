"""`python -m harness {run,status,report,list,preflight}`: the entry points; each only parses and delegates."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.suite import SuiteError

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"
EXIT_USAGE = 2


def _add_grid_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite YAML file, e.g. suites/atari100k.yaml")
    parser.add_argument("--agents", help="comma-separated subset of the suite's agents, e.g. iris,rem")
    parser.add_argument("--envs", help="comma-separated subset of the suite's envs, e.g. Pong,Breakout")
    parser.add_argument("--seeds", help="a count (5 -> seeds 0..4) or a list (0,1,2); default: the suite's")
    parser.add_argument("--set", dest="sets", action="append", metavar="AGENT.KEY=VALUE",
                        help="override an agent config value, e.g. --set iris.tokenizer.batch_size=64 (repeatable)")
    parser.add_argument("--runs-dir", default="runs", type=Path, help="root of the run directories (default: runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=(
        "wmbench: run token-based world-model agents (IRIS, Δ-IRIS, REM, TWM) under one pinned protocol "
        "and report rliable aggregates."))
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) a suite's grid of agent x env x seed cells",
                         description="Expands the suite into cells, skips done ones, resumes partial ones from "
                                     "their checkpoint, retries failed ones, and runs the rest. Runs preflight first.")
    _add_grid_args(run)
    run.add_argument("--executor", choices=("local", "slurm", "debug"), default="local",
                     help="local: one process per cell (default); slurm: job arrays via submitit; debug: in-process")
    run.add_argument("--cluster-profile", help="cluster profile YAML for --executor slurm, e.g. slurm/example.yaml")
    run.add_argument("--max-parallel", type=int, default=1, help="local executor: cells run at once (default 1)")
    run.add_argument("--max-failures", type=int, default=3,
                     help="skip a cell after this many failed attempts unless --retry-failed (default 3)")
    run.add_argument("--retry-failed", action="store_true", help="retry cells whatever their failure count")
    run.add_argument("--deterministic", action="store_true",
                     help="deterministic torch algorithms (exact resume on CPU; slower)")
    run.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and print their outcomes")
    run.add_argument("--dry-run", action="store_true", help="print the grid and what would run; submit nothing")
    run.add_argument("--skip-preflight", action="store_true", help="do not run preflight checks first")

    status = sub.add_parser("status", help="one table of cells and their state",
                            description="States: new, queued, running, partial, failed, done, corrupt, conflict.")
    status.add_argument("suite", nargs="?", help="a suite YAML (show its grid) or a suite name (show its runs)")
    status.add_argument("--runs-dir", default="runs", type=Path)
    status.add_argument("--agents")
    status.add_argument("--envs")
    status.add_argument("--seeds")

    report = sub.add_parser("report", help="build reports/<suite>/ (markdown, HTML, CSVs, figures)",
                            description="Reads every run directory of a suite (or of all suites) and writes "
                                        "report.md, report.html, CSVs and PNGs. Never modifies the runs.")
    report.add_argument("--runs-dir", default="runs", type=Path)
    report.add_argument("--suite", help="suite name (default: every suite found in --runs-dir)")
    report.add_argument("--out", type=Path, help="output folder (default: reports/<suite>; without --suite, "
                                                 "the parent of one folder per suite, default reports/)")
    report.add_argument("--reps", type=int, help="bootstrap repetitions (default: the report's own, stated in it)")

    sub.add_parser("list", help="agents with their profiles, suites, envs")

    preflight = sub.add_parser("preflight", help="check a suite can run before submitting anything",
                               description="Builds every env of the suite under each agent's protocols, checks the "
                                           "files each profile needs and the cluster profile.")
    _add_grid_args(preflight)
    preflight.add_argument("--cluster-profile")

    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("spec_file", type=Path)
    worker.add_argument("--runs-dir", type=Path, required=True)
    worker.add_argument("--deterministic", action="store_true")
    return parser


def _grid(args: argparse.Namespace):
    from harness.suite import expand, load_suite, parse_list, parse_seeds, parse_sets

    suite = load_suite(args.suite)
    cells = expand(suite, agents=parse_list(args.agents), envs=parse_list(args.envs), seeds=parse_seeds(args.seeds),
                   sets=parse_sets(getattr(args, "sets", None)))
    return suite, cells


def cmd_run(args: argparse.Namespace) -> int:
    from harness.launch import executors
    from harness.launch.cells import format_table
    from harness.launch.plan import check_runs_dir, plan_launch, preflight
    from harness.store import RunDirError

    if args.executor == "slurm" and not args.cluster_profile:
        raise SuiteError("--executor slurm needs --cluster-profile (e.g. slurm/example.yaml)")
    if args.executor != "slurm" and args.cluster_profile:
        raise SuiteError("--cluster-profile is only used with --executor slurm")
    profile = None
    if args.cluster_profile:
        from harness.launch.profile import load_cluster_profile

        profile = load_cluster_profile(args.cluster_profile)
    suite, cells = _grid(args)
    problem = check_runs_dir(args.runs_dir)
    if problem:
        raise SuiteError(problem)
    plan = plan_launch(cells, args.runs_dir, args.max_failures, args.retry_failed)
    broken = [s for s in plan.states if s.state in ("corrupt", "conflict")]
    if broken:
        lines = "\n".join(f"  {s.run_dir}: {s.state}: {s.detail}" for s in broken)
        raise RunDirError(f"{len(broken)} run director{'y' if len(broken) == 1 else 'ies'} of this grid cannot be "
                          f"used; nothing was run (they are left untouched):\n{lines}")
    print(format_table(plan.states))
    print(f"\n{len(plan.to_run)} cell(s) to run, {len(plan.skipped)} skipped")
    if args.dry_run:
        return 0
    if not plan.to_run:
        return 0
    if not args.skip_preflight:
        problems = preflight(suite, plan.to_run, args.runs_dir, args.cluster_profile)
        if problems:
            print("preflight failed; nothing was submitted:", file=sys.stderr)
            for line in problems:
                print(f"  - {line}", file=sys.stderr)
            return 1
    if args.executor == "debug":
        outcomes = executors.run_debug(plan.to_run, args.runs_dir, args.deterministic)
    elif args.executor == "local":
        outcomes = executors.run_local(plan.to_run, args.runs_dir, args.max_parallel, args.deterministic)
    else:
        assert profile is not None
        executors.submit_slurm(plan.to_run, args.runs_dir, profile, args.deterministic, args.wait)
        return 0
    failed = [cell for cell, outcome in outcomes.items() if not outcome.startswith(("done", "locked"))]
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    from harness.launch.cells import discover, format_table, grid_states

    if args.suite and args.suite.endswith((".yaml", ".yml")):
        args.sets = None
        _, cells = _grid(args)
        states = grid_states(cells, args.runs_dir)
    else:
        states = discover(args.runs_dir, args.suite)
    print(format_table(states))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import build_report

    if not args.runs_dir.is_dir():
        raise SuiteError(f"--runs-dir {args.runs_dir}: no such directory (run a suite first)")
    out = build_report(args.runs_dir, args.suite, args.out, reps=args.reps)
    print(f"report written to {out}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from agents.base import agent_modules, get_agent_class
    from harness.envs import env_names
    from harness.suite import load_suite

    print("agents:")
    for name in agent_modules():
        try:
            agent_class = get_agent_class(name)
        except (ImportError, KeyError) as err:
            print(f"  {name:12s} (not available: {err})")
            continue
        print(f"  {name:12s} profiles: {', '.join(agent_class.profiles)}")
    print("suites:")
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        suite = load_suite(path)
        budgets = ", ".join(f"{steps} {family} steps" for family, steps in suite.budget_steps.items())
        print(f"  {str(path.relative_to(SUITES_DIR.parent)):24s} {len(suite.envs)} env(s), {budgets}; "
              f"agents: {', '.join(suite.agents)}")
    print("envs:")
    for family in ("atari", "crafter", "sanity"):
        print(f"  {family}: {', '.join(env_names(family))}")
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    from harness.launch.plan import preflight

    suite, cells = _grid(args)
    problems = preflight(suite, cells, args.runs_dir, args.cluster_profile)
    if problems:
        print("preflight found problems:")
        for line in problems:
            print(f"  - {line}")
        return 1
    print(f"preflight OK: {len(cells)} cell(s), envs build under their protocols, required files present")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import json

    from harness.loop import run_cell
    from harness.suite import RunSpec

    spec = RunSpec.from_dict(json.loads(args.spec_file.read_text()))
    outcome = run_cell(spec, args.runs_dir, deterministic=args.deterministic)
    return {"done": 0, "locked": 3, "stopped": 4}[outcome]


COMMANDS = {"run": cmd_run, "status": cmd_status, "report": cmd_report, "list": cmd_list,
            "preflight": cmd_preflight, "worker": cmd_worker}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.launch.profile import ClusterProfileError
    from harness.store import RunDirError

    try:
        return COMMANDS[args.command](args)
    except (SuiteError, ClusterProfileError, RunDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
