"""tpu_scripts/launch.py: the gcloud commands it builds, its argument errors, the local launcher."""

import importlib.util
import json
import os
import shlex
import sys
import tarfile
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tpu_scripts", "launch.py")

_spec = importlib.util.spec_from_file_location("hampjax_tpu_launch", SCRIPT)
launch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch)

TPU = ["--name", "my-tpu", "--zone", "us-central2-b"]


def dry_run(capsys, *argv):
    """Run ``launch.py ARGV --dry-run`` in-process; return the printed commands, split."""
    assert launch.main([argv[0], "--dry-run", *argv[1:]]) == 0
    out = capsys.readouterr().out
    return [shlex.split(line) for line in out.splitlines()]


def option(cmd, name):
    values = [a.split("=", 1)[1] for a in cmd if a.startswith(f"{name}=")]
    assert len(values) == 1, (name, cmd)
    return values[0]


def remote(cmd):
    """The shell command a ``gcloud ... ssh --command=...`` runs on the workers, split."""
    lexer = shlex.shlex(option(cmd, "--command"), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True  # split on blanks and on shell operators such as && and ;
    return list(lexer)


# -- dry runs -----------------------------------------------------------------------------

def test_create(capsys):
    [cmd] = dry_run(capsys, "create", *TPU, "--accelerator-type", "v4-32")
    assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "create", "my-tpu", "--zone=us-central2-b",
                   "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base"]


def test_create_options(capsys):
    [cmd] = dry_run(capsys, "create", *TPU, "--version", "v2-alpha-tpuv5", "--spot",
                    "--project", "my project", "--gcloud", "/opt/gcloud")
    assert cmd[0] == "/opt/gcloud"
    assert option(cmd, "--version") == "v2-alpha-tpuv5"
    assert option(cmd, "--accelerator-type") == "v4-8"
    assert option(cmd, "--project") == "my project"  # quoted on the line, one token after split
    assert "--spot" in cmd


def test_setup_copies_the_repository(capsys, tmp_path):
    archive = str(tmp_path / "src dir.tar.gz")
    pack, copy, ssh = dry_run(capsys, "setup", *TPU, "--archive", archive)
    assert pack[:3] == ["tar", "-czf", archive] and pack[-3:] == ["-C", ROOT, "."]
    assert "--exclude=.git" in pack
    assert copy[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "scp", archive]
    assert copy[6] == "my-tpu:hampjax-src.tar.gz"
    assert option(copy, "--worker") == "all" and option(copy, "--zone") == "us-central2-b"
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
    assert option(ssh, "--worker") == "all"
    words = remote(ssh)
    assert words[:3] == ["mkdir", "-p", "hampjax"]
    assert ["tar", "-xzf", "hampjax-src.tar.gz", "-C", "hampjax"] == words[4:9]
    tail = words[words.index("cd"):]
    assert tail[:3] == ["cd", "hampjax", "&&"]
    assert tail[-6:] == ["python3", "-m", "pip", "install", "-e", ".[tpu]"]


def test_setup_clones_a_git_branch(capsys):
    [ssh] = dry_run(capsys, "setup", *TPU, "--repo-url", "https://example.com/h.git", "--branch",
                    "dev", "--remote-dir", "work dir", "--extras", "tpu,tfds", "--worker", "1")
    assert option(ssh, "--worker") == "1"
    words = remote(ssh)
    clone = words.index("clone")
    assert words[clone - 1:clone + 7] == ["git", "clone", "--depth", "1", "--branch", "dev",
                                          "https://example.com/h.git", "work dir"]
    assert ["fetch", "--depth", "1", "origin", "dev"] == words[words.index("fetch"):][:5]
    assert words[-6:] == ["python3", "-m", "pip", "install", "-e", ".[tpu,tfds]"]


def test_run_quotes_the_entry_point_and_its_flags(capsys):
    [ssh] = dry_run(capsys, "run", *TPU, "--workdir", "/mnt/shared/runs/a b", "--env",
                    "XLA_FLAGS=--x --y", "--env", "EMPTY=", "experiments/demo.py", "--",
                    "--models", "64", "--note", "it's \"quoted\"")
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
    assert option(ssh, "--worker") == "all" and option(ssh, "--zone") == "us-central2-b"
    assert remote(ssh) == [
        "cd", "hampjax", "&&", "env", "HAMPJAX_DISTRIBUTED=1", "XLA_FLAGS=--x --y", "EMPTY=",
        "python3", "experiments/demo.py", "--models", "64", "--note", "it's \"quoted\"",
        "--workdir=/mnt/shared/runs/a b"]


def test_run_a_module(capsys):
    [ssh] = dry_run(capsys, "run", *TPU, "--workdir", "/w", "--python", "python3.11",
                    "--project", "p", "experiments.demo")
    assert option(ssh, "--project") == "p"
    assert remote(ssh)[-4:] == ["python3.11", "-m", "experiments.demo", "--workdir=/w"]


@pytest.mark.parametrize("yes", [False, True])
def test_delete(capsys, yes):
    [cmd] = dry_run(capsys, "delete", *TPU, *(["--yes"] if yes else []))
    assert cmd[:7] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "my-tpu",
                       "--zone=us-central2-b"]
    assert ("--quiet" in cmd) == yes and len(cmd) == 7 + yes


@pytest.mark.parametrize("platform", ["gpu", "cpu"])
def test_local_dry_run(capsys, platform):
    lines = dry_run(capsys, "local", "-n", "3", "--platform", platform, "--port", "1234",
                    "--env", "A=1 2", "--workdir", "/tmp/w", "--python", "py", "train.py", "--",
                    "--flag")
    assert len(lines) == 3
    for i, cmd in enumerate(lines):
        assert cmd[0] == "env" and cmd[-4:] == ["py", "train.py", "--flag", "--workdir=/tmp/w"]
        env = dict(a.split("=", 1) for a in cmd[1:-4])
        expected = {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234", "JAX_NUM_PROCESSES": "3",
                    "JAX_PROCESS_ID": str(i), "A": "1 2"}
        expected.update({"JAX_PLATFORMS": "cpu"} if platform == "cpu"
                        else {"CUDA_VISIBLE_DEVICES": str(i)})
        assert env == expected


# -- argument errors ----------------------------------------------------------------------

ERRORS = [
    (["create", "--zone", "us-central2-b"], "the following arguments are required: --name"),
    (["delete", "--name", "t"], "the following arguments are required: --zone"),
    (["create", "--name", "My_TPU", "--zone", "us-central2-b"], "invalid TPU name 'My_TPU'"),
    (["create", "--name", "tpu-", "--zone", "us-central2-b"], "invalid TPU name"),
    (["create", "--name", "t", "--zone", "central"], "invalid zone 'central'"),
    (["run", *TPU, "e.py"], "the following arguments are required: --workdir"),
    (["run", *TPU, "--workdir", "/w"], "the following arguments are required: entry"),
    (["run", *TPU, "--workdir", "runs/x", "e.py"], "use an absolute path"),
    (["run", *TPU, "--workdir", "gs://bucket/x", "e.py"], "mount the bucket"),
    (["run", *TPU, "--workdir", "/w", "--env", "NOVALUE", "e.py"],
     "invalid --env 'NOVALUE': expected KEY=VALUE"),
    (["run", *TPU, "--workdir", "/w", "--env", "1X=2", "e.py"], "invalid --env '1X=2'"),
    (["run", *TPU, "--workdir", "/w", "--env", "=v", "e.py"], "invalid --env '=v'"),
    (["run", *TPU, "--workdir", "/w", "--worker", "first", "e.py"],
     "--worker must be 'all' or a 0-based index"),
    (["setup", *TPU, "--branch", "dev"], "--branch needs --repo-url"),
    (["setup", *TPU, "--source", ".", "--repo-url", "u"], "not allowed with argument"),
    (["setup", *TPU, "--extras", "tpu;rm"], "invalid --extras"),
    (["local", "e.py"], "the following arguments are required: --num-processes"),
    (["local", "-n", "0", "e.py"], "expected a positive integer, got '0'"),
    (["local", "-n", "2", "--port", "70000", "e.py"], "expected a port in [1, 65535]"),
    (["local", "-n", "2", "--platform", "tpu", "e.py"], "invalid choice: 'tpu'"),
    (["local", "-n", "2", "--env", "X", "e.py"], "invalid --env 'X'"),
    ([], "the following arguments are required: COMMAND"),
]


@pytest.mark.parametrize("argv, message", ERRORS)
def test_argument_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        launch.main([argv[0], "--dry-run", *argv[1:]] if argv else argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err  # one line, no usage block
    assert err.startswith("launch.py") and "Traceback" not in err


# -- running the commands (a fake gcloud records its arguments) ----------------------------

def fake_gcloud(tmp_path, fail_on=None):
    log = tmp_path / "calls.jsonl"
    path = tmp_path / "gcloud"
    path.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps(sys.argv[1:]) + "\\n")
        sys.exit(7 if {fail_on!r} in sys.argv[1:] else 0)
        """))
    path.chmod(0o755)
    return str(path), log


def calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_setup_runs_tar_scp_ssh(tmp_path, capsys):
    gcloud, log = fake_gcloud(tmp_path)
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("x = 1\n")
    (src / ".git").mkdir()
    archive = str(tmp_path / "out.tar.gz")
    assert launch.main(["setup", *TPU, "--gcloud", gcloud, "--source", str(src),
                        "--archive", archive]) == 0
    with tarfile.open(archive) as tar:
        names = {os.path.normpath(n) for n in tar.getnames()}
    assert "pkg/a.py" in names and ".git" not in names
    scp, ssh = calls(log)
    assert scp[:4] == ["compute", "tpus", "tpu-vm", "scp"] and scp[4] == archive
    assert ssh[:5] == ["compute", "tpus", "tpu-vm", "ssh", "my-tpu"]


def test_a_failing_command_stops_the_sequence(tmp_path, capsys):
    gcloud, log = fake_gcloud(tmp_path, fail_on="scp")
    rc = launch.main(["setup", *TPU, "--gcloud", gcloud, "--source", str(tmp_path),
                      "--archive", str(tmp_path.parent / f"{tmp_path.name}.tar.gz")])
    assert rc == 7
    assert [c[3] for c in calls(log)] == ["scp"]  # ssh never ran
    assert "command failed with exit status 7" in capsys.readouterr().err


def test_create_and_delete_run_gcloud(tmp_path):
    gcloud, log = fake_gcloud(tmp_path)
    assert launch.main(["create", *TPU, "--gcloud", gcloud]) == 0
    assert launch.main(["delete", *TPU, "--gcloud", gcloud, "--yes"]) == 0
    assert [c[3:5] for c in calls(log)] == [["create", "my-tpu"], ["delete", "my-tpu"]]


# -- the local launcher --------------------------------------------------------------------

WORKER = """\
import os, sys
import jax
from hampjax.training import maybe_initialize

assert maybe_initialize(), "the launcher should have asked for jax.distributed"
assert jax.process_count() == 2, jax.process_count()
assert os.environ["JAX_PLATFORMS"] == "cpu" and "CUDA_VISIBLE_DEVICES" not in os.environ
with open(os.path.join(sys.argv[1], f"process_{jax.process_index()}.txt"), "w") as f:
    f.write(f"{jax.process_index()} {jax.process_count()} {sys.argv[2]}")
"""


def test_local_runs_two_distributed_cpu_processes(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    t0 = time.monotonic()
    rc = launch.main(["local", "-n", "2", "--platform", "cpu", "--timeout", "120",
                      "--log-dir", str(tmp_path / "logs"), str(script), "--", str(tmp_path),
                      "--workdir-next"])
    logs = "".join(p.read_text() for p in sorted((tmp_path / "logs").iterdir()))
    assert rc == 0, logs
    for i in range(2):
        assert (tmp_path / f"process_{i}.txt").read_text() == f"{i} 2 --workdir-next"
    assert time.monotonic() - t0 < 60


def test_local_failure_stops_the_others(tmp_path, capsys):
    script = tmp_path / "fail.py"
    script.write_text("import os, sys, time\n"
                      "if os.environ['JAX_PROCESS_ID'] == '1':\n    sys.exit(3)\n"
                      "time.sleep(60)\n")
    t0 = time.monotonic()
    rc = launch.main(["local", "-n", "2", "--platform", "cpu", str(script)])
    assert rc == 3
    assert time.monotonic() - t0 < 20  # process 0 was stopped, not waited for
    assert "process 1 failed with exit status 3" in capsys.readouterr().err


def test_local_timeout(tmp_path, capsys):
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(60)\n")
    rc = launch.main(["local", "-n", "2", "--platform", "cpu", "--timeout", "1", str(script)])
    assert rc == 124
    assert "timed out after 1 s" in capsys.readouterr().err
