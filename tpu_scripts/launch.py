#!/usr/bin/env python3
"""Launch hampjax runs on Cloud TPU VMs / pod slices, or as several processes on one host.

Every subcommand builds its commands first; ``--dry-run`` prints them (one per line, quoted with
``shlex.join``) and exits 0, otherwise they run one after the other and the first failure stops
the sequence with its exit status. Standard library only.

    # a v4-32 pod slice (4 hosts), the repository copied to every host, a resumable run
    python tpu_scripts/launch.py create --name my-tpu --zone us-central2-b --accelerator-type v4-32
    python tpu_scripts/launch.py setup  --name my-tpu --zone us-central2-b
    python tpu_scripts/launch.py run    --name my-tpu --zone us-central2-b \\
        --workdir /mnt/shared/runs/demo experiments/demo.py -- --models 64
    python tpu_scripts/launch.py delete --name my-tpu --zone us-central2-b

    # 2 local processes with jax.distributed (one GPU each, or CPU for testing)
    python tpu_scripts/launch.py local --num-processes 2 --platform cpu experiments/demo.py

``run`` starts ``HAMPJAX_DISTRIBUTED=1 python3 ENTRY ARGS --workdir=WORKDIR`` on every worker;
``hampjax.training.maybe_initialize()`` then calls ``jax.distributed.initialize()``, which finds
the other hosts by itself on a TPU pod. ``local`` sets ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` explicitly. See ``tpu_scripts/README.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_VM = ("compute", "tpus", "tpu-vm")

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXTRAS = re.compile(r"[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*")


# -- argument types (argparse turns their ValueError/ArgumentTypeError into a usage error) ----

def _tpu_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid TPU name {value!r}: use 1-63 lowercase letters, digits and hyphens, "
            "starting with a letter and not ending with a hyphen")
    return value


def _zone(value: str) -> str:
    if not _ZONE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid zone {value!r}: expected a Compute Engine zone such as us-central2-b")
    return value


def _env_pair(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not _ENV_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(
            f"invalid --env {value!r}: expected KEY=VALUE with KEY a variable name "
            "([A-Za-z_][A-Za-z0-9_]*)")
    return key, val


def _workdir(value: str) -> str:
    if "://" in value:
        raise argparse.ArgumentTypeError(
            f"invalid --workdir {value!r}: hampjax writes through the file system; mount the "
            "bucket on every host (e.g. gcsfuse) and pass the mount path")
    if not value.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"invalid --workdir {value!r}: use an absolute path on storage that every host "
            "mounts at the same place (NFS, Filestore, gcsfuse)")
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in [1, 65535], got {value!r}")
    return number


def _extras(value: str) -> str:
    if not _EXTRAS.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid --extras {value!r}: expected comma-separated extra names such as tpu,tfds")
    return value


# -- command builders (pure: arguments in, argv lists out) ------------------------------------

def _gcloud(args: argparse.Namespace, verb: str, *rest: str) -> list[str]:
    cmd = [args.gcloud, *TPU_VM, verb, *rest]
    if args.project:
        cmd.append(f"--project={args.project}")
    return cmd


def _ssh_all(args: argparse.Namespace, remote: str) -> list[str]:
    return _gcloud(args, "ssh", args.name, f"--zone={args.zone}", f"--worker={args.worker}",
                   f"--command={remote}")


def _python_argv(python: str, entry: str, entry_args: Sequence[str]) -> list[str]:
    """``python ENTRY ARGS`` for a script path, ``python -m ENTRY ARGS`` for a module name."""
    if entry.endswith(".py") or os.sep in entry or "/" in entry:
        return [python, entry, *entry_args]
    return [python, "-m", entry, *entry_args]


def build_create(args: argparse.Namespace) -> list[list[str]]:
    cmd = _gcloud(args, "create", args.name, f"--zone={args.zone}",
                  f"--accelerator-type={args.accelerator_type}", f"--version={args.version}")
    if args.spot:
        cmd.append("--spot")
    return [cmd]


def build_setup(args: argparse.Namespace) -> list[list[str]]:
    remote_dir = args.remote_dir
    install = (f"cd {shlex.quote(remote_dir)} && {args.python} -m pip install --upgrade pip && "
               f"{args.python} -m pip install -e {shlex.quote(f'.[{args.extras}]')}")
    if args.repo_url:
        q_dir, q_branch = shlex.quote(remote_dir), shlex.quote(args.branch)
        fetch = (f"if [ -d {q_dir}/.git ]; then git -C {q_dir} fetch --depth 1 origin {q_branch} "
                 f"&& git -C {q_dir} checkout --force FETCH_HEAD; else git clone --depth 1 "
                 f"--branch {q_branch} {shlex.quote(args.repo_url)} {q_dir}; fi")
        return [_ssh_all(args, f"{fetch} && {install}")]
    archive = args.archive or os.path.join(tempfile.gettempdir(), f"hampjax-src-{args.name}.tar.gz")
    remote_archive = "hampjax-src.tar.gz"
    pack = ["tar", "-czf", archive, "--exclude=.git", "--exclude=__pycache__",
            "--exclude=*.egg-info", "--exclude=.pytest_cache", "--exclude=runs",
            "-C", args.source, "."]
    copy = _gcloud(args, "scp", archive, f"{args.name}:{remote_archive}", f"--zone={args.zone}",
                   f"--worker={args.worker}")
    unpack = (f"mkdir -p {shlex.quote(remote_dir)} && tar -xzf {remote_archive} "
              f"-C {shlex.quote(remote_dir)} && rm -f {remote_archive}")
    return [pack, copy, _ssh_all(args, f"{unpack} && {install}")]


def _env_assignments(env: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{k}={v}" for k, v in env]


def build_run(args: argparse.Namespace) -> list[list[str]]:
    program = _python_argv(args.python, args.entry, [*args.entry_args, f"--workdir={args.workdir}"])
    env = ["env", "HAMPJAX_DISTRIBUTED=1", *_env_assignments(args.env)]
    remote = f"cd {shlex.quote(args.remote_dir)} && {shlex.join(env + program)}"
    return [_ssh_all(args, remote)]


def build_delete(args: argparse.Namespace) -> list[list[str]]:
    cmd = _gcloud(args, "delete", args.name, f"--zone={args.zone}")
    if args.yes:
        cmd.append("--quiet")
    return [cmd]


def local_environments(args: argparse.Namespace, port: int) -> list[dict[str, str]]:
    """The variables each local process gets on top of the launcher's environment."""
    envs = []
    for i in range(args.num_processes):
        env = {
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": str(args.num_processes),
            "JAX_PROCESS_ID": str(i),
        }
        if args.platform == "cpu":
            env["JAX_PLATFORMS"] = "cpu"
        else:
            env["CUDA_VISIBLE_DEVICES"] = str(i)
        env.update(dict(args.env))
        envs.append(env)
    return envs


def _local_program(args: argparse.Namespace) -> list[str]:
    extra = [f"--workdir={args.workdir}"] if args.workdir else []
    return _python_argv(args.python, args.entry, [*args.entry_args, *extra])


def build_local(args: argparse.Namespace, port: int) -> list[list[str]]:
    program = _local_program(args)
    return [["env", *(f"{k}={v}" for k, v in env.items()), *program]
            for env in local_environments(args, port)]


# -- running -------------------------------------------------------------------------------

def _run_sequence(commands: Sequence[Sequence[str]]) -> int:
    for cmd in commands:
        print(f"+ {shlex.join(cmd)}", file=sys.stderr, flush=True)
        code = subprocess.call(list(cmd))
        if code != 0:
            print(f"command failed with exit status {code}: {shlex.join(cmd)}", file=sys.stderr)
            return code
    return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: Sequence[subprocess.Popen], grace: float = 5.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local(args: argparse.Namespace, port: int) -> int:
    """Start the processes, wait for all; on the first failure stop the others (they would wait
    for it forever at the next barrier) and return its exit status."""
    program = _local_program(args)
    logs = []
    procs: list[subprocess.Popen] = []
    try:
        for i, (cmd, extra_env) in enumerate(zip(build_local(args, port),
                                                 local_environments(args, port))):
            out = None
            if args.log_dir:
                os.makedirs(args.log_dir, exist_ok=True)
                out = open(os.path.join(args.log_dir, f"process_{i}.log"), "w")
                logs.append(out)
            print(f"+ [{i}] {shlex.join(cmd)}", file=sys.stderr, flush=True)
            try:
                procs.append(subprocess.Popen(program, env={**os.environ, **extra_env},
                                              stdout=out, stderr=subprocess.STDOUT if out else None))
            except OSError as e:
                print(f"cannot start process {i}: {e}", file=sys.stderr)
                _stop(procs)
                return 127
        deadline = time.monotonic() + args.timeout if args.timeout else None
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                print(f"process {i} failed with exit status {code}; stopping the others",
                      file=sys.stderr)
                _stop(procs)
                return code if code > 0 else 1
            if all(c == 0 for c in codes):
                return 0
            if deadline is not None and time.monotonic() > deadline:
                print(f"timed out after {args.timeout} s; stopping all processes", file=sys.stderr)
                _stop(procs)
                return 124
            time.sleep(0.05)
    except KeyboardInterrupt:
        _stop(procs)
        return 128 + signal.SIGINT
    finally:
        for f in logs:
            f.close()


# -- command line --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """One-line errors (``launch.py: error: <message>``, exit status 2), no usage block; the
    same convention as hampjax.cli, kept local so this script needs nothing but the standard
    library on the machine that launches."""

    def error(self, message: str):
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="launch.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dry-run", action="store_true",
                        help="print the commands (one per line) instead of running them")

    tpu = argparse.ArgumentParser(add_help=False, parents=[common])
    tpu.add_argument("--name", required=True, type=_tpu_name, help="TPU VM name")
    tpu.add_argument("--zone", required=True, type=_zone, help="zone, e.g. us-central2-b")
    tpu.add_argument("--project", help="Google Cloud project (default: gcloud's configured one)")
    tpu.add_argument("--gcloud", default="gcloud", help="gcloud executable (default: gcloud)")

    workers = argparse.ArgumentParser(add_help=False)
    workers.add_argument("--worker", default="all",
                         help="workers to act on: all (default) or a 0-based index")
    workers.add_argument("--remote-dir", default="hampjax",
                         help="repository directory on the workers, relative to the home "
                              "directory (default: hampjax)")
    workers.add_argument("--python", default="python3", help="Python on the workers")

    p = sub.add_parser("create", parents=[tpu], help="create a TPU VM or pod slice")
    p.add_argument("--accelerator-type", default="v4-8",
                   help="e.g. v4-8 (one host), v4-32 (4 hosts), v5p-16 (default: v4-8)")
    p.add_argument("--version", default="tpu-ubuntu2204-base",
                   help="TPU software version (default: tpu-ubuntu2204-base)")
    p.add_argument("--spot", action="store_true", help="a Spot VM (cheaper, can be preempted)")
    p.set_defaults(build=build_create)

    p = sub.add_parser("setup", parents=[tpu, workers],
                       help="copy the repository to every worker and pip install it")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--source", default=REPO_ROOT,
                        help="local directory to copy (default: this repository)")
    source.add_argument("--repo-url", help="git URL to clone on every worker instead of copying")
    p.add_argument("--branch", default="main", help="branch or tag for --repo-url (default: main)")
    p.add_argument("--archive", help="local path of the tarball made from --source "
                                     "(default: in the temporary directory)")
    p.add_argument("--extras", default="tpu", type=_extras,
                   help="pip extras to install (default: tpu)")
    p.set_defaults(build=build_setup)

    p = sub.add_parser("run", parents=[tpu, workers],
                       help="run an entry point on every worker with jax.distributed")
    p.add_argument("--workdir", required=True, type=_workdir,
                   help="run directory shared by all workers (absolute path; passed to the "
                        "entry point as --workdir=...)")
    p.add_argument("--env", action="append", default=[], type=_env_pair, metavar="KEY=VALUE",
                   help="extra environment variable for the entry point (repeatable)")
    p.add_argument("entry", help="script path relative to --remote-dir (e.g. experiments/x.py) "
                                 "or a module name")
    p.add_argument("entry_args", nargs="*", metavar="ARG",
                   help="arguments of the entry point (put them after --)")
    p.set_defaults(build=build_run)

    p = sub.add_parser("delete", parents=[tpu], help="delete the TPU VM (stops the billing)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(build=build_delete)

    p = sub.add_parser("local", parents=[common],
                       help="N processes on this host, one per GPU (or CPU for testing)")
    p.add_argument("--num-processes", "-n", type=_positive_int, required=True)
    p.add_argument("--platform", choices=("gpu", "cpu"), default="gpu",
                   help="gpu: CUDA_VISIBLE_DEVICES=i per process; cpu: JAX_PLATFORMS=cpu")
    p.add_argument("--port", type=_port, help="coordinator port (default: a free port)")
    p.add_argument("--workdir", help="passed to the entry point as --workdir=... (optional)")
    p.add_argument("--env", action="append", default=[], type=_env_pair, metavar="KEY=VALUE",
                   help="extra environment variable for every process (repeatable)")
    p.add_argument("--log-dir", help="write process i's output to LOG_DIR/process_i.log")
    p.add_argument("--timeout", type=_positive_int, help="stop all processes after this many s")
    p.add_argument("--python", default=sys.executable, help="Python (default: this one)")
    p.add_argument("entry", help="script path or module name")
    p.add_argument("entry_args", nargs="*", metavar="ARG",
                   help="arguments of the entry point (put them after --)")
    p.set_defaults(build=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command == "setup" and args.branch != "main" and not args.repo_url:
        parser.error("setup: --branch needs --repo-url")
    if args.command in ("setup", "run") and not (
            args.worker == "all" or args.worker.isdigit()):
        parser.error(f"{args.command}: --worker must be 'all' or a 0-based index, "
                     f"got {args.worker!r}")
    if args.command == "local":
        port = args.port or _free_port()
        if args.dry_run:
            for cmd in build_local(args, port):
                print(shlex.join(cmd))
            return 0
        return run_local(args, port)
    commands = args.build(args)
    if args.dry_run:
        for cmd in commands:
            print(shlex.join(cmd))
        return 0
    return _run_sequence(commands)


if __name__ == "__main__":
    sys.exit(main())
