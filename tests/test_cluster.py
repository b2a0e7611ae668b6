"""A real two-node Ray cluster on 127.0.0.1: `pianomime collect --ray-address` and
`baselines/evaluate.py --ray-address` on it, a worker node killed mid-collection, songs lost to
the infrastructure, a killed driver.

The cluster is Ray's own ``ray.cluster_utils.Cluster`` (a head and worker nodes, one CPU each,
real raylets and object stores), run by a helper process of this file (``python -m
tests.test_cluster serve``) in its own session and temp dir, with token authentication on;
every test talks to it by address only, like a user's shell. Teardown stops it, and kills its
process group whatever happened.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("minari")

ROOT = Path(__file__).resolve().parents[1]
SHORT = "CMajorChordProgressionTwoHands"  # 81 steps
TWINKLE = "TwinkleTwinkleRousseau"

pytestmark = pytest.mark.slow


# -- the cluster helper (runs in its own process) -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> dict:
    return {
        "node_ip_address": "127.0.0.1",
        "num_cpus": 1,
        "object_store_memory": 100 * 2**20,
        "dashboard_agent_listen_port": _free_port(),
        "metrics_agent_port": _free_port(),
        "metrics_export_port": _free_port(),
        "runtime_env_agent_port": _free_port(),
    }


def _serve() -> None:  # pragma: no cover - runs in the helper process
    """Starts head + one worker node; answers one JSON line per command line on stdin."""
    from ray.cluster_utils import Cluster

    try:
        import aiohttp  # noqa: F401  (the dashboard, hence Ray's state API, needs ray[default])

        dashboard = True
    except ImportError:
        dashboard = False
    head = {
        **_node_ports(),
        "temp_dir": os.path.join(os.environ["RAY_TMPDIR"], "ray"),
        "include_dashboard": dashboard,
        "dashboard_host": "127.0.0.1",
        "dashboard_port": _free_port(),
        # Notice a lost node in ~2 s rather than ~15 s (Ray's health check of the raylets).
        "_system_config": {
            "health_check_initial_delay_ms": 0,
            "health_check_period_ms": 500,
            "health_check_timeout_ms": 500,
            "health_check_failure_threshold": 3,
        },
    }
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=head)
    workers: list = []

    def state() -> dict:
        return {
            "address": cluster.address,
            "head": cluster.head_node.node_id,
            "workers": [n.node_id for n in workers],
            "dashboard": dashboard,
        }

    def add() -> None:
        workers.append(cluster.add_node(**_node_ports()))
        cluster.wait_for_nodes()

    def running(prefix: str) -> bool:
        """Whether a worker node's raylet has a worker process executing a task ``prefix*``
        (Ray titles such a process ``ray::<task name>``)."""
        import psutil

        for node in workers:
            raylet = node.all_processes["raylet"][0].process.pid
            try:
                kids = psutil.Process(raylet).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for p in kids:
                try:
                    title = " ".join(p.cmdline())
                except psutil.Error:
                    continue
                if title.startswith("ray::" + prefix):
                    return True
        return False

    def tasks() -> list:
        from ray.util.state import list_tasks

        return [
            {"name": t.name, "node_id": t.node_id, "state": t.state, "attempt": t.attempt_number}
            for t in list_tasks(
                address=cluster.address, limit=10_000, raise_on_missing_output=False
            )
        ]

    add()
    print(json.dumps(state()), flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "add":
                add()
                out = state()
            elif cmd == "kill":  # SIGKILL every process of the worker nodes: a lost machine
                for node in workers:
                    cluster.remove_node(node, allow_graceful=False)
                workers.clear()
                out = state()
            elif cmd == "running":
                out = running(arg)
            elif cmd == "tasks":
                out = tasks()
            elif cmd == "quit":
                break
            else:
                out = {"error": f"unknown command {cmd!r}"}
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)
    cluster.shutdown()


class RayCluster:
    """The test's handle on the helper: address, node ids, commands."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pmray-", dir="/tmp")  # short: Unix socket paths
        self.token = secrets.token_hex(32)
        self.ray_env = {
            "RAY_TMPDIR": self.tmp,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
            # Ray takes 127.0.0.1 for "this machine" and swaps in its network address; this
            # switch (meant for laptops) keeps every process of the test on the loopback.
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.test_cluster", "serve"],
            cwd=ROOT,
            env={**os.environ, **self.ray_env, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.tmp, "helper.log"), "w"),
            text=True,
            start_new_session=True,  # its own process group: teardown kills every Ray process
        )
        self.state = self._reply()

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            log = Path(self.tmp, "helper.log").read_text()[-3000:]
            raise RuntimeError(f"the cluster helper died:\n{log}")
        out = json.loads(line)
        if isinstance(out, dict) and "error" in out:
            raise RuntimeError(out["error"])
        return out

    def command(self, cmd: str):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._reply()

    @property
    def env(self) -> dict:
        """The environment of a driver: this process's (the test's Minari root) plus the
        cluster's token."""
        return {**os.environ, **self.ray_env}

    @property
    def address(self) -> str:
        return self.state["address"]

    def ensure_one_worker(self) -> None:
        if len(self.state["workers"]) != 1:
            if self.state["workers"]:
                self.command("kill")
            self.state = self.command("add")

    def kill_workers(self) -> None:
        self.state = self.command("kill")

    def tasks(self, prefix: str) -> list[dict]:
        return [t for t in self.command("tasks") if t["name"].startswith(prefix)]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
        except Exception:
            pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
            except ProcessLookupError:
                pass
            self.proc.wait()
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster():
    c = RayCluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster(ray_cluster):
    """The module's cluster with exactly one live worker node (a test may have killed it)."""
    ray_cluster.ensure_one_worker()
    return ray_cluster


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


# -- helpers ---------------------------------------------------------------------------------


def _collect_cmd(dataset: str, songs: list[str], *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "pianomime_env.app.cli", "collect", "--dataset", dataset]
    return cmd + ["--songs", *songs, "--noise", "0.05", *extra]


def _run(cmd: list[str], env: dict, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _episodes(dataset_id: str):
    import minari

    ds = minari.load_dataset(dataset_id)
    return list(ds.iterate_episodes()), list(ds.storage.get_episode_metadata(ds.episode_indices))


def _assert_same_dataset(a_id: str, b_id: str, n: int) -> None:
    """Same episodes array for array, each (song, segment, episode) exactly once."""
    eps_a, meta_a = _episodes(a_id)
    eps_b, meta_b = _episodes(b_id)
    ids = [(m["song_index"], m["segment"], m["episode_in_segment"]) for m in meta_b]
    assert len(ids) == len(set(ids)) == n, ids  # none duplicated, none missing
    assert len(eps_a) == len(eps_b) == n
    for ea, eb, ma, mb in zip(eps_a, eps_b, meta_a, meta_b):
        assert (ma["song"], ma["seed"], ma["segment"]) == (mb["song"], mb["seed"], mb["segment"])
        np.testing.assert_array_equal(ea.actions, eb.actions, err_msg=f"{mb} {ma}")
        np.testing.assert_array_equal(ea.rewards, eb.rewards)
        np.testing.assert_array_equal(ea.terminations, eb.terminations)
        np.testing.assert_array_equal(ea.truncations, eb.truncations)
        np.testing.assert_array_equal(ea.infos["expert_action"], eb.infos["expert_action"])
        for k in ea.observations:
            np.testing.assert_array_equal(ea.observations[k], eb.observations[k])
        assert ma["metrics"] == mb["metrics"]


def _local(dataset: str, songs: list[str], episodes: int, **kw) -> None:
    from pianomime_env.collection.collect import collect

    collect(dataset, songs, episodes=episodes, noise=0.05, workers=1, **kw)


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the driver ended (rc {proc.returncode}) before {what}:\n{out[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_collect_on_two_nodes_equals_local(cluster, minari_root, tmp_path):
    songs = [SHORT, TWINKLE]
    _local("local-v0", songs, 2)
    summary = tmp_path / "summary.json"
    cmd = _collect_cmd("cluster-v0", songs, "--episodes", "2", "--ray-address", cluster.address)
    r = _run([*cmd, "--summary", str(summary)], cluster.env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    _assert_same_dataset("local-v0", "cluster-v0", 4)
    # Each song ran on its own node (one CPU each): the head and the worker.
    nodes = json.loads(summary.read_text())["nodes"]
    assert set(nodes.values()) == {cluster.state["head"], *cluster.state["workers"]}
    if cluster.state["dashboard"]:  # Ray's state API (ray[default]) shows the same
        tasks = cluster.tasks("collect_song[")
        done = {t["node_id"] for t in tasks if t["state"] == "FINISHED"}
        assert done == set(nodes.values()), tasks


@pytest.mark.timeout(180)
def test_evaluate_on_two_nodes_equals_local(cluster, tmp_path):
    from pianomime_env.learning.evaluation import evaluate_song

    songs = [SHORT, TWINKLE]
    cmd = [sys.executable, "baselines/evaluate.py", "--songs", *songs, "--max-seconds", "4"]
    r = _run([*cmd, "--ray-address", cluster.address, "--out", str(tmp_path)], cluster.env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    local = [evaluate_song(s, "sight-reader", 4.0, True, 0) for s in songs]
    assert [r["song"] for r in rows] == songs
    for got, want in zip(rows, local):
        assert {k: v for k, v in got.items() if k != "seconds_per_step"} == {
            k: v for k, v in want.items() if k != "seconds_per_step"
        }
    if cluster.state["dashboard"]:  # Ray's state API (ray[default]): a task on each node
        tasks = cluster.tasks("evaluate_song[")
        done = {t["node_id"] for t in tasks if t["state"] == "FINISHED"}
        assert done == {cluster.state["head"], *cluster.state["workers"]}, tasks


@pytest.mark.timeout(60)
def test_the_state_api_is_there(cluster):
    """The state API checks of the other tests need Ray's dashboard: say so if it is missing."""
    pytest.importorskip("aiohttp", reason="Ray's state API needs pip install 'ray[default]'")
    assert cluster.state["dashboard"]
    assert isinstance(cluster.command("tasks"), list)


@pytest.mark.timeout(180)
def test_worker_node_killed_mid_collection(cluster, minari_root, tmp_path):
    songs = [SHORT, TWINKLE]
    _local("local-v0", songs, 3)
    summary = tmp_path / "summary.json"
    cmd = _collect_cmd("killed-node-v0", songs, "--episodes", "3", "--ray-address", cluster.address)
    proc = subprocess.Popen(
        [*cmd, "--summary", str(summary)],
        cwd=ROOT,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The worker node is busy with one of the songs: lose the machine.
        _wait_for(lambda: cluster.command("running collect_song["), 90, "a task on the worker")
        cluster.kill_workers()
        out, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "will be retried" in out or "running it again" in out  # Ray's retry, or ours
    # Every episode exactly once, the same as the local collection; both songs from the head.
    _assert_same_dataset("local-v0", "killed-node-v0", 6)
    nodes = json.loads(summary.read_text())["nodes"]
    assert set(nodes.values()) == {cluster.state["head"]}, nodes
    if cluster.state["dashboard"]:  # the lost attempt, and the retry on the head
        tasks = cluster.tasks("collect_song[")
        assert any(t["attempt"] > 0 and t["state"] == "FINISHED" for t in tasks), tasks


@pytest.mark.timeout(180)
def test_songs_lost_beyond_retries_fail_the_run_and_a_rerun_completes(
    cluster, minari_root, tmp_path
):
    songs = [SHORT, TWINKLE]
    _local("local-v0", songs, 3)
    cmd = _collect_cmd("lost-v0", songs, "--episodes", "3", "--ray-address", cluster.address)
    env = {**cluster.env, "PIANOMIME_RETRIES": "0"}  # no retry at all: the loss is final
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for(lambda: cluster.command("running collect_song["), 90, "a task on the worker")
        cluster.kill_workers()
        out, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, out[-3000:]  # cli.EXIT_INCOMPLETE: re-run it
    assert "Traceback" not in out
    assert "lost to infrastructure failures" in out and "run the same command again" in out
    assert "skipped" not in out  # never reported like a bad song
    assert not (minari_root / "lost-v0").exists()  # no partial dataset
    shards = list((minari_root / ".pianomime-collect" / "lost-v0" / "shards").glob("*.pkl"))
    assert len(shards) == 1  # the head's song is kept
    # The same command again (one node left) collects the missing song only.
    r = _run(cmd, cluster.env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "resuming: 1 of 2 songs already done" in r.stdout
    _assert_same_dataset("local-v0", "lost-v0", 6)


@pytest.mark.timeout(180)
def test_killed_driver_reruns_to_the_same_dataset(cluster, minari_root):
    songs = [SHORT, TWINKLE, "CMajorScaleTwoHands"]
    _local("local-v0", songs, 2)
    cmd = _collect_cmd("driver-v0", songs, "--episodes", "2", "--ray-address", cluster.address)
    shards = minari_root / ".pianomime-collect" / "driver-v0" / "shards"
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: any(shards.glob("*.pkl")), 120, "a finished song")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, mid-run
        proc.wait()
    n_done = len(list(shards.glob("*.pkl")))
    assert 1 <= n_done < 3, "the driver must be killed mid-way"
    assert not (minari_root / "driver-v0").exists()
    r = _run(cmd, cluster.env)  # its tasks died with it; the cluster is fine
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"resuming: {n_done} of 3 songs already done" in r.stdout
    _assert_same_dataset("local-v0", "driver-v0", 6)


@pytest.mark.timeout(120)
def test_a_driver_without_the_token_is_told_how(cluster, minari_root):
    env = {k: v for k, v in cluster.env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["HOME"] = str(minari_root)  # no ~/.ray/auth_token either
    cmd = _collect_cmd("noauth-v0", [SHORT], "--episodes", "1", "--ray-address", cluster.address)
    r = _run(cmd, env, timeout=90)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "RAY_AUTH_TOKEN" in r.stderr and "RAY_AUTH_MODE=token" in r.stderr, r.stderr[-3000:]


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    _serve()
