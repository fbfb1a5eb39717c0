"""The fit check: an estimate that grows linearly with the collection, and a one-line
refusal before any work where the job cannot fit the memory this machine has free."""

from __future__ import annotations

import pytest

from fglab.training import fit_check
from fglab.training.fit_check import JobTooLarge, available_memory, check_fit, estimate_fit

GB = 2**30


def test_the_estimate_grows_linearly_with_pairs_image_width_and_text():
    small, large = estimate_fit(10_000, 1280, 3_000_000), estimate_fit(100_000, 1280, 30_000_000)
    fixed = fit_check.BASE_BYTES * fit_check.MARGIN
    assert large.peak_bytes - fixed == pytest.approx(10 * (small.peak_bytes - fixed))
    assert large.seconds == pytest.approx(10 * small.seconds)
    assert estimate_fit(10_000, 2560, 0).peak_bytes > estimate_fit(10_000, 1280, 0).peak_bytes
    assert estimate_fit(10_000, 1280, 10**9).peak_bytes > small.peak_bytes
    assert "10,000 pairs" in small.describe() and "GB" in small.describe()


def test_a_job_that_fits_passes_and_one_that_does_not_says_what_to_change():
    job = estimate_fit(1_000_000, 1280, 300_000_000)
    check_fit(job, available=2 * job.peak_bytes)
    with pytest.raises(JobTooLarge) as refused:
        check_fit(job, available=8 * GB)
    message = str(refused.value)
    assert "\n" not in message
    assert "1,000,000 pairs" in message and "8.0 GB is available" in message
    fitting = int(message.split("at most about ")[1].split(" pairs")[0].replace(",", ""))
    assert 0 < fitting < 1_000_000
    # the number it names does fit
    check_fit(estimate_fit(fitting, 1280, 300 * fitting), available=8 * GB)
    with pytest.raises(JobTooLarge, match="free memory") as refused:  # not even an empty job
        check_fit(estimate_fit(10, 1280, 3000), available=GB)
    assert "at most" not in str(refused.value)


def test_available_memory_reads_meminfo_and_a_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert available_memory(meminfo, cgroup) == 20000000 * 1024  # no limit file
    (cgroup / "memory.max").write_text("max\n")
    assert available_memory(meminfo, cgroup) == 20000000 * 1024
    (cgroup / "memory.max").write_text(str(4 * GB))
    (cgroup / "memory.current").write_text(str(1 * GB))
    assert available_memory(meminfo, cgroup) == 3 * GB
    assert available_memory(tmp_path / "none", tmp_path / "none") == float("inf")
