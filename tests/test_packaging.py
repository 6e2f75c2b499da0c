"""A built wheel, installed outside the source tree, carries every preset and rule spec."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The built wheel, installed (without dependencies) into a folder outside the source tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("zennit_composer-*.whl")
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    return wheel, site


def test_wheel_outside_the_tree_composes_every_preset(installed, tmp_path):
    _, site = installed
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    presets, rules = map(int, out.stdout.split())
    expected = len([p for p in (ROOT / "presets").glob("*.yaml")])
    assert rules == len(list((ROOT / "rule_specs").glob("*.yaml")))
    assert 0 < presets <= expected


#: a core install: the [cli] extra's packages (but Pillow, a dependency of zennit) cannot be imported
CORE_ONLY = """
import sys
sys.modules.update(matplotlib=None, sklearn=None)   # importing either raises ImportError
from composer.cli import main
sys.argv = ['composer'] + sys.argv[1:]
main()
"""


def test_the_command_runs_on_a_core_install_and_names_the_extra(installed, tmp_path):
    wheel, site = installed
    with zipfile.ZipFile(wheel) as zf:
        meta = next(zf.read(n).decode() for n in zf.namelist() if n.endswith("METADATA"))
    core = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert any("typer" in line for line in core) and any("rich" in line for line in core)
    env = dict(os.environ, PYTHONPATH=str(site))
    listed = subprocess.run([sys.executable, "-c", CORE_ONLY, "list"], cwd=tmp_path, env=env, capture_output=True,
                            text=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "lrp_epsilon" in listed.stdout
    demo = subprocess.run([sys.executable, "-c", CORE_ONLY, "demo", "--fast"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert demo.returncode != 0
    assert "pip install 'zennit-composer[cli]'" in demo.stdout + demo.stderr
