import os
import shutil
import subprocess

import pytest

from pixel_dqn.envs.display import DisplayError, VirtualDisplay
from pixel_dqn.run_directory import train_command


@pytest.mark.slow
def test_missing_xvfb_fails_in_one_line_naming_the_package(tmp_path):
    """Before TensorFlow loads: ``python -m pixel_dqn.train`` runs with tensorflow unimportable."""
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty PATH: no Xvfb anywhere
    python, module_flag, module, *args = train_command("display.virtual=true",
                                                       run_dir=tmp_path / "run")
    assert module_flag == "-m"
    without_tensorflow = ("import runpy, sys; sys.modules['tensorflow'] = None; "
                          "sys.argv = [sys.argv[1], *sys.argv[2:]]; "
                          "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")
    proc = subprocess.run(
        [python, "-c", without_tensorflow, module, *args],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "xvfb" in errors[0] and "display.virtual" in errors[0]
    assert not (tmp_path / "run" / "metrics.csv").exists()  # failed before training


def test_missing_xvfb_raises_display_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DisplayError, match="apt-get install -y xvfb"):
        VirtualDisplay().start()


@pytest.mark.skipif(shutil.which("Xvfb") is None and not os.environ.get("CI"),
                    reason="Xvfb is not installed (.ci/run installs it; CI never skips this)")
@pytest.mark.slow
def test_a_real_virtual_display_starts_and_stops(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    display = VirtualDisplay(size=(320, 240))
    display.start()
    try:
        number = os.environ.get("DISPLAY", "")
        assert display.running and number.startswith(":")
        assert os.path.exists(f"/tmp/.X11-unix/X{number[1:]}")  # the X server's socket
        display.start()  # a second start is a no-op
        assert os.environ["DISPLAY"] == number
    finally:
        display.stop()
    assert not display.running and "DISPLAY" not in os.environ
