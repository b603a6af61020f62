"""Ablation presets, multiruns through Hydra's launchers, and the seed-aggregated report."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT

from pixel_dqn.benchmarking import machine_description, package_code_version
from pixel_dqn.config import load_config
from pixel_dqn.report import find_jobs, iqm, iqm_ci, read_job, summarise
from pixel_dqn.run_directory import CHECKPOINT_DIR, train_command

PRESETS = {
    "state_vs_pixels": {"state": "make_env", "pixels": "make_pixel_env"},
    "pixel_obs": {"obs_diff": "diff", "obs_diff_current": "diff_current", "obs_stack": "stack"},
    "dqn_variants": {"vanilla": (False, 1, False, False), "double": (True, 1, False, False),
                     "dueling": (False, 1, False, True), "n_step": (False, 3, False, False),
                     "prioritized": (False, 1, True, False)},
}
TINY = ("env=cartpole_state", "model=mlp", "trainer=dqn", "total_steps=300",
        "model.hidden_sizes=[16]", "trainer.learning_starts=100", "trainer.batch_size=32",
        "eval.every_steps=150", "eval.episodes=2", "eval.final_episodes=2",
        "progress_interval_s=1000")


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_each_of_its_arms(compose_config, preset):
    arms = PRESETS[preset]
    for arm, expected in arms.items():
        cfg = compose_config(f"+experiment={preset}", f"+arm={arm}")
        if preset == "state_vs_pixels":
            assert cfg.env._target_.endswith(expected)
        elif preset == "pixel_obs":
            assert cfg.env.obs_mode == expected == cfg.model.obs_mode
        else:
            t = cfg.trainer
            assert (t.double_dqn, t.n_step, t.prioritized, cfg.model.dueling) == expected
            assert cfg.env._target_.endswith("make_env")  # the state agent by default


def _multirun(tmp_path, *overrides, check=True):
    command = train_command(*TINY, *overrides, f"hydra.sweep.dir={tmp_path}", multirun=True)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=check)


def _report(multirun_dir):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(multirun_dir)],
                   cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    with open(multirun_dir / "report.csv", newline="") as f:
        return {row["arm"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_tiny_multirun_and_its_report(tmp_path, launcher):
    # threads.intra_op=0 asks the launcher to share the cores (the default is one thread);
    # seed aggregation is test_report_statistics_on_known_values's: one seed per arm here
    extra = () if launcher == "basic" else ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                            "threads.intra_op=0")
    _multirun(tmp_path, "+arm=vanilla,double", "seed=0", *extra)
    jobs = find_jobs(tmp_path)
    assert len(jobs) == 2 and all(j.finished for j in jobs)
    rows = _report(tmp_path)
    assert set(rows) == {"arm=vanilla", "arm=double"}
    assert all(int(r["seeds"]) == 1 for r in rows.values())
    for name in ("report.md", "report.csv", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = (tmp_path / "report.md").read_text()  # the sweep's own command line, from Hydra
    assert "- sweep: `python scripts/train.py -m " in report and "+arm=vanilla,double" in report
    assert ("hydra/launcher=joblib" in report) == (launcher == "joblib")
    # provenance: the code and machine each run recorded in its timing.json
    assert f"- runs' code: {package_code_version()}" in report
    assert f"- runs' machine: {machine_description()}" in report
    if launcher == "joblib":  # two jobs side by side on the cores: one TF thread each
        threads = [yaml.safe_load((tmp_path / j.name / "config.yaml").read_text())["threads"]
                   for j in jobs]
        share = max((os.cpu_count() or 1) // 2, 1)
        assert all(t == {"intra_op": share, "inter_op": share} for t in threads)


@pytest.mark.slow
def test_a_failing_job_does_not_lose_the_others_and_is_listed(tmp_path):
    proc = _multirun(tmp_path, "trainer.gamma=0.9,1.5", check=False)
    assert proc.returncode != 0
    assert "trainer.gamma=1.5 is invalid" in proc.stderr
    jobs = {j.name: j for j in find_jobs(tmp_path)}
    assert len(jobs) == 2 and sum(j.finished for j in jobs.values()) == 1
    _report(tmp_path)
    failed = next(name for name, j in jobs.items() if not j.finished)
    assert f"Failed or unfinished jobs (no eval.json): {failed}" in (
        tmp_path / "report.md").read_text()


def _submitit_tasks(folder):
    """Pids of the submitit task processes (``submitit.core._submit``) working for ``folder``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if "submitit.core._submit" in cmdline and any(str(folder) in a for a in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_submitit_requeues_a_preempted_job_which_resumes_from_its_checkpoint(tmp_path):
    """The submitit_local launcher end to end. SIGUSR2 is what submitit sends before a time
    limit or a preemption: the job checkpoints at that step, submitit requeues it, and the
    requeued job resumes from that checkpoint and finishes."""
    overrides = [o for o in TINY if not o.startswith("total_steps=")]
    command = train_command(*overrides, "total_steps=4000", "checkpoint.every_steps=500",
                            "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                            f"hydra.sweep.dir={tmp_path}", multirun=True)
    sweep = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(f"*/{CHECKPOINT_DIR}/step-*")):  # training is under way
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.05)
    tasks = _submitit_tasks(tmp_path)
    assert len(tasks) == 1
    os.kill(tasks[0], signal.SIGUSR2)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err[-2000:]
    log = "".join(f.read_text() for f in (tmp_path / ".submitit").rglob("*_log.*"))
    handed_on = re.search(r"SIGUSR2 handed on to the launcher at env step (\d+)", log)
    resumed = re.search(r"resuming from \S+ \(env step (\d+)\)", log)
    assert handed_on and resumed and handed_on.group(1) == resumed.group(1), log[-3000:]
    assert "Requeued job" in log
    job = find_jobs(tmp_path)[0]
    assert job.finished
    with open(tmp_path / job.name / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "train"]
    # every training episode once: none lost or written twice across the requeue
    assert [int(r["episode"]) for r in rows] == list(range(1, len(rows) + 1))
    assert int(rows[-1]["env_step"]) > int(resumed.group(1))


def _fake_job(root, name, overrides, final, evals):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    with open(job / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["kind", "env_step", "return"])
        writer.writerows(["eval", step, value] for step, value in evals)
    if final is not None:
        (job / "eval.json").write_text(json.dumps({"mean": final}))
        (job / "timing.json").write_text(json.dumps({"steps_per_s": 100.0, "env_steps": 300}))


def test_report_statistics_on_known_values(tmp_path):
    finals = [100, 200, 300, 400, 500, 600, 700, 800]
    for seed, final in enumerate(finals):
        _fake_job(tmp_path, f"{seed}_a", ["+arm=a", f"seed={seed}"], final,
                  [(100, 50.0), (200, 480.0 if seed < 3 else 60.0)])
    for seed in range(3):
        _fake_job(tmp_path, f"{seed}_b", ["+arm=b", f"seed={seed}"], 250.0, [(100, 10.0)])
    _fake_job(tmp_path, "3_b", ["+arm=b", "seed=3"], None, [(100, 10.0)])  # unfinished
    rows = {r["arm"]: r for r in summarise(find_jobs(tmp_path))}
    a, b = rows["arm=a"], rows["arm=b"]
    assert a["final_eval_iqm"] == pytest.approx(450.0)  # mean of 300..600
    assert a["final_eval_mean"] == pytest.approx(450.0) and a["seeds"] == 8
    assert 100 <= a["iqm_ci_low"] < 450 < a["iqm_ci_high"] <= 800
    # eval >= 475 at step 200 on seeds 0-2; the final evals (at step 300) of seeds 4-7 reach it
    # too; seed 3 never does: median of 200, 200, 200, 300, 300, 300, 300, inf
    assert a["median_steps_to_475"] == 300.0
    assert a["solved"] == 4 and b["solved"] == 0  # final evals of 500, 600, 700, 800
    assert (b["seeds"], b["failed_or_unfinished"]) == (3, 1)
    assert (b["final_eval_iqm"], b["iqm_ci_low"], b["iqm_ci_high"]) == (250.0, 250.0, 250.0)
    assert iqm(np.array([1.0, 2.0, 3.0, 100.0])) == pytest.approx(2.5)
    low, high = iqm_ci(np.array([1.0, 2.0, 3.0, 100.0]))
    assert 1.0 <= low <= 2.5 <= high <= 100.0


def test_a_report_grades_the_trained_network_not_the_kept_one(tmp_path):
    _fake_job(tmp_path, "0_a", ["+arm=a", "seed=0"], 300.0, [(100, 50.0), (200, 480.0)])
    kept = tmp_path / "0_a" / "eval.json"  # eval.keep_best: the kept network from step 200
    kept.write_text(json.dumps({"mean": 490.0, "last_network": {"mean": 300.0},
                                "kept_from": {"env_step": 200, "periodic_eval": 480.0}}))
    job = read_job(tmp_path / "0_a")
    assert (job.final_eval, job.kept_eval) == (300.0, 490.0)  # graded: what training reached
    assert job.curve == [(100, 50.0), (200, 480.0), (300, 300.0)]


def test_jobs_are_listed_in_hydra_job_order(tmp_path):
    for num in (10, 2, 1):
        _fake_job(tmp_path, f"{num}_a-seed{num}", ["+arm=a", f"seed={num}"], 100.0, [(100, 10.0)])
    assert [j.name for j in find_jobs(tmp_path)] == ["1_a-seed1", "2_a-seed2", "10_a-seed10"]


def test_one_report_over_several_sweeps(tmp_path):
    """A study's sweeps (one arm each, the same job names) make one report with --out."""
    for sweep, arm, final in (("s1", "+arm=a", 480.0), ("s2", "+arm=b", 300.0)):
        for seed in range(2):
            _fake_job(tmp_path / sweep, f"{seed}_seed{seed}", [arm, f"seed={seed}"], final,
                      [(100, final)])
    out = tmp_path / "summary"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"),
                           str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    with open(out / "report.csv", newline="") as f:
        rows = {r["arm"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"arm=a", "arm=b"}
    assert (rows["arm=a"]["solved"], rows["arm=b"]["solved"]) == ("2", "0")
    report = (out / "report.md").read_text()
    assert report.strip() in proc.stdout  # printed as well as written
    for name in ("s1/0_seed0", "s1/1_seed1", "s2/0_seed0", "s2/1_seed1"):
        assert f"| {name} |" in report
    missing = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"),
                              str(tmp_path / "s1"), str(tmp_path / "s2")],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "--out" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


ARMS = sorted(p.stem for p in (ROOT / "conf" / "arm").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_composes_into_a_valid_config(compose_config, arm):
    load_config(compose_config(f"+arm={arm}"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes_into_a_valid_config(compose_config, experiment):
    load_config(compose_config(f"+experiment={experiment}"))


def test_the_study_arms_set_what_their_names_say(compose_config):
    track = compose_config("+arm=track_view").env
    assert (track.window, track.follow, list(track.size), track.obs_mode) == (
        1.0, 0.0, [32, 120], "diff_current")
    seed = compose_config("+arm=seed_view").env
    assert (seed.window, seed.follow, list(seed.size), seed.obs_mode) == (0.6, 1.0, [40, 90],
                                                                          "diff")
    # the state screen pins the pixel terms it started from; each arm changes one thing
    base = compose_config("+experiment=learner_state", "+arm=pixel_terms")
    assert cfg_targets(base) == ("make_env", "build_mlp")
    assert (base.env.num_envs, base.total_steps) == (4, 100_000)
    assert (base.trainer.gamma, base.trainer.n_step, base.trainer.train_freq) == (0.99, 3, 4)
    horizon = compose_config("+experiment=learner_state", "+arm=long_horizon").trainer
    assert (horizon.gamma, horizon.n_step, horizon.train_freq) == (0.999, 10, 4)
    assert compose_config("+experiment=learner_state", "+arm=gamma999").trainer.gamma == 0.999


def cfg_targets(cfg):
    return cfg.env._target_.rsplit(".", 1)[1], cfg.model._target_.rsplit(".", 1)[1]


def test_jobs_with_the_same_config_are_one_arm_whatever_overrides_made_them(tmp_path):
    """A screen's arm and the defaults it became pool; a config that differs stays apart."""
    jobs = [("screen", "0_seed0", ["+arm=x", "trainer.gamma=0.999", "seed=0"], 0.999),
            ("defaults", "0_seed1", ["seed=1"], 0.999),
            ("defaults", "1_seed2", ["seed=2"], 0.999),
            ("other", "0_seed0", ["trainer.gamma=0.99", "seed=0"], 0.99)]
    for sweep, name, overrides, gamma in jobs:
        _fake_job(tmp_path / sweep, name, overrides, 400.0, [(100, 10.0)])
        seed = int(overrides[-1].split("=")[1])
        (tmp_path / sweep / name / "config.yaml").write_text(yaml.safe_dump(
            {"seed": seed, "trainer": {"gamma": gamma}, "progress_interval_s": 10 + seed}))
    found = find_jobs(tmp_path / "screen", tmp_path / "defaults", tmp_path / "other")
    assert [j.arm for j in found] == ["arm=x trainer.gamma=0.999"] * 3 + ["trainer.gamma=0.99"]
    rows = {r["arm"]: r["seeds"] for r in summarise(found)}
    assert rows == {"arm=x trainer.gamma=0.999": 3, "trainer.gamma=0.99": 1}
