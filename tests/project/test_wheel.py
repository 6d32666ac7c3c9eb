"""The wheel holds the pretrained model, and predict answers with it in a fresh environment."""
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKED = "csa_keras/pretrained/csa_fer2013/"


def test_a_fresh_environment_predicts_with_the_model_in_the_wheel(tmp_path, grace_hopper):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--quiet", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("csa_keras-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in ("classifier.keras", "metrics.json", "config.json", "MODEL_CARD.md"):
        assert PACKED + name in names, name
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        declared = archive.read(entry_points).decode()
    assert "csa-keras = csa_keras.__main__:main" in declared
    assert "voting-resnet = voting_resnet.__main__:main" in declared

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                                "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # The dependencies (TensorFlow, OpenCV, ...) come from this environment, the package from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    # The console script pip wrote, run by the fresh environment's interpreter.
    script = site / "bin" / "csa-keras"
    assert script.is_file()
    done = subprocess.run([str(venv / "bin" / "python"), str(script), "predict", str(grace_hopper)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    record = json.loads(done.stdout.splitlines()[0])
    assert record["status"] == "ok" and record["label"] in record["probabilities"]
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import csa_keras, sys; print(csa_keras.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(site)), where
