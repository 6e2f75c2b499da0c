"""A built wheel, installed outside the source tree, carries every preset and rule spec."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import composer, sys
from pathlib import Path
assert 'site' in composer.__file__, composer.__file__
names = composer.list_presets(); rules = composer.list_rules()
for name in names:
    composer.compose(name)
composer.compose('lrpsign_epsilon_0_25_std_x_mu_0_5')
print(len(names), len(rules))
"""


def test_wheel_outside_the_tree_composes_every_preset(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("zennit_composer-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    presets, rules = map(int, out.stdout.split())
    expected = len([p for p in (ROOT / "presets").glob("*.yaml")])
    assert rules == len(list((ROOT / "rule_specs").glob("*.yaml")))
    assert 0 < presets <= expected
