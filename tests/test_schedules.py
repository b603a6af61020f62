import pytest

from pixel_dqn.schedules import LinearSchedule


def test_linear_epsilon_schedule_values():
    schedule = LinearSchedule(start=1.0, end=0.05, duration=1000)
    assert schedule(0) == 1.0
    assert schedule(500) == pytest.approx(0.525)
    assert schedule(1000) == pytest.approx(0.05)
    assert schedule(10_000) == pytest.approx(0.05)
    assert schedule(-5) == 1.0
