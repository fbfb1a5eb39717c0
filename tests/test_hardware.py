"""The thread policy: what a user set is kept; otherwise one torch thread per idle core."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from fglab import hardware
from fglab.hardware import prefer_passive_wait, set_fit_threads, thread_policy, threads_for


@pytest.fixture
def fake_torch(monkeypatch):
    """torch's thread count as a plain number starting at 4 (fglab's state reset)."""
    state = {"threads": 4}
    monkeypatch.setattr(hardware, "_threads", hardware._Threads())
    monkeypatch.setattr(torch, "get_num_threads", lambda: state["threads"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: state.update(threads=n))
    return state


def test_passive_wait_is_set_only_where_the_user_set_nothing():
    environ: dict[str, str] = {}
    assert prefer_passive_wait(environ) and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    environ = {"OMP_WAIT_POLICY": "active"}
    assert not prefer_passive_wait(environ) and environ == {"OMP_WAIT_POLICY": "active"}
    environ = {"FGLAB_THREAD_POLICY": "fixed"}
    assert not prefer_passive_wait(environ) and "OMP_WAIT_POLICY" not in environ


def test_unknown_policy_falls_back_to_adaptive():
    assert thread_policy({}) == "adaptive"
    assert thread_policy({"FGLAB_THREAD_POLICY": " Fixed "}) == "fixed"
    assert thread_policy({"FGLAB_THREAD_POLICY": "fast"}) == "adaptive"


@pytest.mark.parametrize(
    ("idle", "ceiling", "threads"),
    [(None, 2, 2), (0.0, 2, 1), (0.4, 2, 1), (1.0, 2, 1), (1.4, 2, 1), (1.6, 2, 2),
     (2.0, 2, 2), (15.0, 2, 2), (2.0, 1, 1)],
)
def test_one_thread_per_idle_core_within_the_ceiling(idle, ceiling, threads):
    assert threads_for(idle, ceiling) == threads


def test_the_count_follows_the_idle_cores_up_to_two(fake_torch):
    assert set_fit_threads({}, idle=2.0) == 2 and fake_torch["threads"] == 2
    assert set_fit_threads({}, idle=0.9) == 1 and fake_torch["threads"] == 1
    # the 1 is fglab's own choice, not the user's: a later fit on idle cores goes back to 2
    assert set_fit_threads({}, idle=3.5) == 2 and fake_torch["threads"] == 2


def test_a_lower_count_set_before_the_first_fit_is_the_ceiling(fake_torch):
    fake_torch["threads"] = 1
    assert set_fit_threads({}, idle=2.0) == 1


def test_a_count_the_user_set_is_kept(fake_torch):
    set_fit_threads({}, idle=2.0)
    fake_torch["threads"] = 3  # torch.set_num_threads(3) between two fits
    assert set_fit_threads({}, idle=0.5) == 3 and fake_torch["threads"] == 3


@pytest.mark.parametrize("variable", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_a_count_from_the_environment_is_kept(fake_torch, variable):
    assert set_fit_threads({variable: "4"}, idle=0.5) == 4 and fake_torch["threads"] == 4


def test_the_fixed_policy_is_the_earlier_two_threads(fake_torch):
    assert set_fit_threads({"FGLAB_THREAD_POLICY": "fixed"}, idle=0.5) == 2


def test_idle_cores_from_two_readings_of_proc_stat(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    head = "cpu  1 1 1 1 1 1 1 1 0 0\n"
    # cpu0 idle 100 of 100 ticks between the readings, cpu1 idle 25 of 100 (+ 25 iowait)
    first = head + "cpu0 5 0 0 7 0 0 0 0 0 0\ncpu1 5 0 0 7 0 0 0 0 0 0\nintr 5\n"
    second = head + "cpu0 5 0 0 107 0 0 0 0 0 0\ncpu1 45 0 10 32 25 0 0 0 0 0\nintr 9\n"
    stat.write_text(first)
    monkeypatch.setattr(hardware, "_affinity", lambda: {0, 1})
    monkeypatch.setattr(hardware.time, "sleep", lambda _: stat.write_text(second))
    assert hardware.idle_cores(0.2, stat) == pytest.approx(1.5)
    assert hardware.idle_cores(0.2, tmp_path / "missing") is None


def test_importing_fglab_first_makes_torchs_openmp_threads_sleep():
    """libgomp (torch's OpenMP runtime) reports a spin count of 0 under the passive policy."""
    code = "import fglab, torch; torch.ones(64, 64).sum()"
    env = {"PATH": "", "OMP_DISPLAY_ENV": "VERBOSE"}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stderr
    if "GOMP_SPINCOUNT" not in shown:
        pytest.skip("torch's OpenMP runtime is not libgomp here")
    assert "GOMP_SPINCOUNT = '0'" in shown


@pytest.mark.parametrize(("command", "work"), [("train", "train_pipeline"),
                                               ("reproduce", "reproduce")])
def test_the_cli_threads_option_sets_torchs_threads(fake_torch, monkeypatch, tmp_path, command,
                                                    work):
    from fglab.cli import main

    for name in (*hardware.THREAD_VARIABLES, hardware.POLICY_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    seen: list[int] = []

    def stop(*_: object, **__: object):
        seen.append(fake_torch["threads"])
        raise ValueError("stopped before any work")

    monkeypatch.setattr(f"fglab.cli.{command}.{work}", stop)
    monkeypatch.setattr(hardware, "idle_cores", lambda: 1.0)
    argv = [command, "eng-wiki", "--out", str(tmp_path / "run")]
    assert main(argv) == 2 and seen == [1]  # default: as a fit chose, one per idle core
    assert main([*argv, "--threads", "3"]) == 2 and seen == [1, 3]
    assert main([*argv, "--threads", "0"]) == 2 and seen == [1, 3]  # refused before any work


def test_available_memory_is_the_kernels_estimate(tmp_path):
    from fglab.hardware import available_memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   12345678 kB\n")
    assert available_memory(meminfo) == 12345678 * 1024
    assert available_memory(tmp_path / "missing") > 0  # the free pages instead
