"""The performance benchmark's bookkeeping: child processes, peak memory, A/B ratios, the report."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import throughput  # noqa: E402

FAKE_REFERENCE = """
import argparse, json, time
parser = argparse.ArgumentParser()
parser.add_argument("--model"); parser.add_argument("--split", type=int)
parser.add_argument("--mode"); parser.add_argument("--steps", type=int); parser.add_argument("--warmup", type=int)
parser.add_argument("--precision", choices=["float32", "bfloat16"], required=True)
args = parser.parse_args()
print("warming up")
time.sleep(0.6)
print(json.dumps({"model": args.model, "split": args.split, "mode": args.mode,
                  "batch": 32, "images_per_s": {"float32": 100.0, "bfloat16": 300.0}[args.precision] * args.steps,
                  "params": PARAMS}))
"""


def fake_reference(folder: Path, params: int = 776_833) -> str:
    """A script with the reference's command line that sleeps, prints a line, and reports ``params``."""
    path = folder / "reference.py"
    path.write_text(FAKE_REFERENCE.replace("PARAMS", str(params)))
    return str(path)


def test_run_measured_reads_the_last_json_line_and_the_childs_own_peak_memory():
    hold = ("import time, numpy as np; a = np.ones((60, 1024, 1024), np.float32); time.sleep(0.6); "
            "print('{\"x\": 1}')")
    line, peak = throughput.run_measured([sys.executable, "-c", hold])
    assert line == {"x": 1}
    assert 240 < peak < 2000  # the 240 MB array the child held, not the parent's memory


def test_run_measured_failure_is_one_line_naming_the_command():
    with pytest.raises(RuntimeError, match=r"failed \(exit 3\): boom"):
        throughput.run_measured([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
    with pytest.raises(RuntimeError, match="printed no JSON line"):
        throughput.run_measured([sys.executable, "-c", "print('no json')"])


def test_a_peak_that_could_not_be_read_is_reported_as_unknown():
    row = {"label": "CSA autoencoder", "mode": "infer", "batch": 32, "keras_median": 1.0,
           "keras_peak_rss_mb": None, "reference_median": 1.0, "reference_peak_rss_mb": 12.0,
           "median_ratio": 1.0}
    assert "| infer | 32 | float32 | native | 1.00 | n/a | 1.00 | 12 | 1.00x |" in throughput.markdown([row])
    assert "| infer | 32 | mixed_bfloat16 | avx2 (capped) | 1.00 |" in throughput.markdown(
        [{**row, "precision": "mixed_bfloat16", "isa": "avx2 (capped)"}])
    assert throughput._largest([None, 3.0, None]) == 3.0 and throughput._largest([None]) is None


@pytest.mark.heavy
def test_measure_alternates_keras_and_reference_and_reports_the_median_ratio(tmp_path):
    messages = []
    saved = []
    rows = throughput.measure(["csa"], ["infer"], repeats=2, torch_python=sys.executable,
                              reference=fake_reference(tmp_path), csa_steps=2, log=messages.append,
                              on_row=lambda r: saved.append(len(r)))
    (row,) = rows
    assert saved == [1]
    isa = throughput.isa_name("native")
    assert [m.split(":")[0] for m in messages] == [f"csa infer float32 {isa} run 1/2",
                                                   f"csa infer float32 {isa} run 2/2"]
    assert row["precision"] == "float32" and row["isa"] == isa and isa.endswith(" (native)")
    assert row["reference_images_per_s"] == [200.0, 200.0]
    assert len(row["keras_images_per_s"]) == 2 and min(row["keras_images_per_s"]) > 0
    expected = [k / 200.0 for k in row["keras_images_per_s"]]
    assert row["ratio_per_pair"] == pytest.approx(expected, abs=1e-3)
    assert row["median_ratio"] == pytest.approx(sum(expected) / 2, abs=1e-3)
    assert row["params"] == 776_833  # the CSA autoencoder, as the reference counts it
    assert row["keras_peak_rss_mb"] > 100 and 5 < row["reference_peak_rss_mb"] < row["keras_peak_rss_mb"]
    table = throughput.markdown(rows)
    assert "| CSA autoencoder | infer | 32 |" in table
    assert f"{row['median_ratio']:.2f}x |" in table
    json.dumps(rows)


def keras_stand_in(monkeypatch, params: int = 776_833, caps: list | None = None) -> list[list[str]]:
    """Answer the Keras child's command without starting TensorFlow; the reference still runs. Returns
    the Keras commands seen."""
    real = throughput.run_measured
    seen = []

    def run(command, poll_s=0.1, env=None):
        if "--child" in command:
            seen.append(command)
            if caps is not None:
                caps.append((env or {}).get("ONEDNN_MAX_CPU_ISA"))
            return {"images_per_s": 600.0, "params": params}, 900.0
        return real(command, poll_s, env=env)

    monkeypatch.setattr(throughput, "run_measured", run)
    return seen


def test_each_keras_policy_pairs_with_the_references_precision(tmp_path, monkeypatch):
    keras_commands = keras_stand_in(monkeypatch)
    rows = throughput.measure(["csa"], ["train"], repeats=1, torch_python=sys.executable,
                              reference=fake_reference(tmp_path), csa_steps=1,
                              log=lambda m: None, precisions=["float32", "mixed_bfloat16"])
    assert [c[-1] for c in keras_commands] == ["float32", "mixed_bfloat16"]  # the child's policy
    assert [(r["precision"], r["reference_images_per_s"], r["median_ratio"]) for r in rows] == [
        ("float32", [100.0], 6.0), ("mixed_bfloat16", [300.0], 2.0)]  # the fake reference ran float32, bfloat16
    assert throughput._torch_command("py", "ref.py", "vrn", 2, "infer", 3, "mixed_bfloat16", 1) == [
        "py", "ref.py", "--model", "vrn", "--split", "2", "--mode", "infer", "--steps", "3", "--warmup", "1",
        "--precision", "bfloat16"]


def test_a_capped_instruction_set_runs_both_sides_under_the_cap_in_float32_only(tmp_path, monkeypatch):
    caps = []
    keras_commands = keras_stand_in(monkeypatch, caps=caps)
    rows = throughput.measure(["csa"], ["infer"], repeats=1, torch_python=sys.executable,
                              reference=fake_reference(tmp_path), csa_steps=1, log=lambda m: None,
                              precisions=["float32", "mixed_bfloat16"], isas=["native", "avx2"])
    assert caps == [os.environ.get("ONEDNN_MAX_CPU_ISA"), os.environ.get("ONEDNN_MAX_CPU_ISA"), "AVX2"]
    assert [(r["isa"], r["precision"]) for r in rows] == [
        (throughput.isa_name("native"), "float32"), (throughput.isa_name("native"), "mixed_bfloat16"),
        ("avx2 (capped)", "float32")]
    assert [c[-1] for c in keras_commands] == ["float32", "mixed_bfloat16", "float32"]
    assert throughput.ISA_CAPS["avx2"] == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def test_an_avx512_cpu_is_also_measured_as_avx2_and_an_avx2_one_as_it_is():
    assert throughput.native_isa({"avx2", "fma"}) == "avx2"
    assert throughput.default_isas({"avx2", "fma"}) == ["native"]
    assert throughput.native_isa({"avx2", "avx512f", "avx512_bf16"}) == "avx512"
    assert throughput.default_isas({"avx2", "avx512f"}) == ["native", "avx2"]
    assert throughput.default_isas({"avx2", "avx512f", "amx_tile"}) == ["native", "avx2"]
    assert throughput.native_isa({"sse4_2"}) == "sse41"


def test_a_reference_of_another_size_is_refused(tmp_path, monkeypatch):
    keras_stand_in(monkeypatch)
    with pytest.raises(RuntimeError, match=r"reference.py: 1,000 trainable parameters for csa, Keras has 776,833"):
        throughput.measure(["csa"], ["infer"], repeats=1, torch_python=sys.executable,
                           reference=fake_reference(tmp_path, params=1000), csa_steps=1, log=lambda m: None)


def test_torch_python_alone_runs_the_projects_reference(tmp_path, capsys):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 2.13.0+cpu\n")
    fake_python.chmod(0o755)
    parser = argparse.ArgumentParser()
    throughput.add_arguments(parser)
    args = parser.parse_args(["--torch-python", str(fake_python), "--precision", "mixed_bfloat16", "float32",
                              "mixed_bfloat16"])
    assert throughput.check_arguments(parser, args) == "2.13.0+cpu"
    assert Path(args.reference) == BENCHMARKS / "torch_reference.py" and Path(args.reference).is_file()
    assert args.precision == ["mixed_bfloat16", "float32"]
    args.json_out = str(tmp_path / "rows.json")
    recorded = throughput.public_settings(args)
    assert recorded["torch_python"] == "TORCH_PYTHON" and "json_out" not in recorded
    assert recorded["reference"] == "benchmarks/torch_reference.py"
    assert str(tmp_path) not in json.dumps(recorded)
    unset = parser.parse_args([])
    throughput.check_arguments(parser, unset)
    assert unset.precision == throughput.default_precisions()
    with pytest.raises(SystemExit):
        throughput.check_arguments(parser, parser.parse_args(["--reference", str(fake_python)]))
    assert "--reference needs --torch-python" in capsys.readouterr().err


def test_the_fraction_of_peak_is_six_flops_per_mac_of_training_against_the_rows_precision():
    import peak

    # CSA code6 by hand: six 3x3 convolutions of 10,616,832 MACs and two of 663,552.
    macs = 6 * (48 * 48 // 4) * 9 * 32 * 64 + 2 * 48 * 48 * 9 * 32
    assert peak.training_gflop_per_image("csa", 0) == pytest.approx(6 * macs / 1e9)
    rows = [{"model": "csa", "split": 0, "mode": mode, "precision": precision, "keras_median": 100.0,
             "reference_median": 50.0} for mode in ("train", "infer") for precision in ("float32", "mixed_bfloat16")]
    report = {"peak_gflops": {"float32": 100.0, "bfloat16": 400.0}}
    train32, train16, infer32, _ = peak.annotate(rows, report)
    assert train32["keras_gflops"] == pytest.approx(600 * macs / 1e9, abs=0.1)
    assert train32["keras_fraction_of_peak"] == pytest.approx(6 * macs * 100 / 1e9 / 100, abs=1e-3)
    assert train16["keras_fraction_of_peak"] == pytest.approx(train32["keras_fraction_of_peak"] / 4, abs=1e-3)
    assert train32["reference_gflops"] == pytest.approx(train32["keras_gflops"] / 2, abs=0.1)
    assert infer32["keras_gflops"] == pytest.approx(train32["keras_gflops"] / 3, abs=0.1)
    table = throughput.markdown([{**r, "label": "CSA autoencoder", "batch": 32, "keras_peak_rss_mb": 900.0,
                                  "reference_peak_rss_mb": 450.0, "median_ratio": 2.0} for r in rows])
    assert "| 2.00x | 2.00x | 39 | 39% | 20 | 20% |" in table.splitlines()[2]


def test_a_row_whose_precision_has_no_measured_peak_keeps_its_rate_without_a_fraction():
    import peak

    rows = [{"model": "csa", "split": 0, "mode": "train", "precision": "mixed_bfloat16", "keras_median": 10.0,
             "label": "CSA autoencoder", "batch": 32, "keras_peak_rss_mb": 900.0}]
    (row,) = peak.annotate(rows, {"peak_gflops": {"float32": 100.0}})
    assert row["keras_gflops"] > 0 and "keras_fraction_of_peak" not in row
    assert f"| {row['keras_gflops']:.0f} | n/a |" in throughput.markdown([row])


def test_the_matrix_product_peak_is_measured_for_both_precisions():
    import peak

    found = peak.tensorflow_peak(sizes=(64, 128), repeats=1, work=2e8)
    for dtype in ("float32", "bfloat16"):
        assert set(found[dtype]["per_size"]) == {64, 128}
        assert found[dtype]["gflops"] == max(found[dtype]["per_size"].values()) > 0


def test_predict_pipeline_compares_faces_boxes_and_labels_with_the_reference():
    import predict_pipeline

    def rec(source, box, label, frame=None):
        return {"source": source, "frame": frame, "status": "ok" if box else "no_face", "box": box, "label": label}

    reference = [rec("a", [0, 0, 10, 10], "happy"), rec("b", [0, 0, 20, 20], "sad"), rec("c", None, None)]
    records = [rec("a", [0, 0, 10, 10], "happy"), rec("b", [10, 0, 20, 20], "happy"), rec("c", [5, 5, 8, 8], "sad")]
    found = predict_pipeline.compare(reference, records)
    assert found["images"] == 3 and found["same_face_count"] == 2
    assert (found["faces_reference"], found["faces"]) == (2, 3)
    assert found["min_iou"] == pytest.approx(200 / 600, abs=1e-3) and found["median_iou"] == pytest.approx(
        (1 + 1 / 3) / 2, abs=1e-3)
    assert found["same_label"] == 1


def test_predict_pipeline_measures_each_variant_on_each_runtime_against_keras_in_turn():
    """Two photographs and a 2-frame video, the pretrained CSA on Keras and LiteRT, the VRN on Keras."""
    pytest.importorskip("ai_edge_litert")
    import predict_pipeline

    lines = []
    result = predict_pipeline.measure(photos=2, video_frames=2, repeats=1, models=("csa", "vrn"),
                                      variants=("in turn", "overlapped, min_face 48"),
                                      runtimes=("keras", "litert"), log=lines.append)
    result = json.loads(json.dumps(result))
    assert result["runtimes"] == ["keras", "litert"]
    keys = [(r["model"], r["input"], r["variant"], r["runtime"]) for r in result["rows"]]
    assert keys == [(m, i, v, r) for m, runtimes in (("csa", ("keras", "litert")), ("vrn", ("keras",)))
                    for i in ("photos", "video") for v in ("in turn", "overlapped, min_face 48")
                    for r in runtimes]
    for row in result["rows"]:
        c = row["against_default"]
        assert row["images"] == c["images"] == 2 and row["faces"] == c["faces"]
        if row["runtime"] == "litert":
            keras = next(k for k in result["rows"] if k["runtime"] == "keras" and
                         (k["model"], k["input"], k["variant"]) == (row["model"], row["input"], row["variant"]))
            assert row["faces_per_s_vs_keras"] == pytest.approx(row["faces_per_s"] / keras["faces_per_s"],
                                                                abs=1e-3)
        else:
            assert "faces_per_s_vs_keras" not in row
        if row["variant"] == "in turn":
            assert c["same_face_count"] == 2 and c["median_iou"] == 1.0
        if (row["model"], row["variant"]) == ("csa", "in turn"):
            assert c["same_label"] == c["faces_reference"]  # LiteRT labels the faces Keras found alike
    assert [(c["model"], c["runtime"]) for c in result["shift_controls"]] == [("csa", "keras"), ("vrn", "keras")]
    alone = result["model_alone"]
    assert [(m["model"], m["runtime"], m["faces"], m["calls"]) for m in alone] == [
        ("csa", "keras", 2, 10), ("csa", "litert", 2, 10), ("vrn", "keras", 2, 10)]
    assert all(m["faces_per_s"] == pytest.approx(2000 / m["ms_per_call"], rel=0.01) for m in alone)
    assert alone[1]["faces_per_s_vs_keras"] == pytest.approx(alone[1]["faces_per_s"] / alone[0]["faces_per_s"],
                                                             abs=1e-3)
    assert sum(line.startswith(("csa photos", "csa video")) and " litert " in line for line in lines) == 4
    assert "csa model alone: keras " in "\n".join(lines) and "vrn model alone: keras " in "\n".join(lines)
    table = predict_pipeline.markdown(result).splitlines()
    assert table[0].startswith("| model | input | variant | runtime |")
    assert table[3].startswith("| `csa_fer2013` | photos | in turn | litert |")
    assert table[10].startswith("| VRN baseline (random weights) | photos | in turn | keras |")
    assert len(table) == 2 + len(keys) + len(alone) + 4


def test_predict_pipeline_refuses_litert_without_its_interpreter(monkeypatch, capsys):
    import predict_pipeline

    monkeypatch.setattr(predict_pipeline, "default_runtimes", lambda: ["keras"])
    with pytest.raises(SystemExit) as stopped:
        predict_pipeline.main(["--runtimes", "keras", "litert"])
    assert stopped.value.code == 2
    assert "--runtimes litert needs the LiteRT interpreter" in capsys.readouterr().err
    assert predict_pipeline.model_runtimes("vrn", ["keras", "litert"]) == ["keras"]
    assert predict_pipeline.model_runtimes("csa", ["keras", "litert"]) == ["keras", "litert"]


def test_bfloat16_rows_are_measured_by_default_where_the_cpu_has_bfloat16(monkeypatch):
    from csa_keras.utils import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert throughput.default_precisions() == ["float32", "mixed_bfloat16"]
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert throughput.default_precisions() == ["float32", "mixed_bfloat16"]
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma"})
    assert throughput.default_precisions() == ["float32"]


def test_startup_times_every_row_in_fresh_processes_and_reports_the_phases(monkeypatch):
    import startup

    seen = []

    def run(command, poll_s=0.1, env=None):
        seen.append(command)
        code = command[-1] if command[1] == "-c" else ""
        compile(code or "pass", "<row>", "exec")  # every row's code is Python
        line = {"in_process_s": 1.0}
        if "Predictor.pretrained()" in code:
            line.update(import_s=0.5, load_s=2.0, first_photo_s=0.25)
        return line, 700.0

    monkeypatch.setattr(startup.throughput, "run_measured", run)
    result = startup.measure(repeats=2, torch_python=sys.executable, log=lambda m: None)
    names = [r["row"] for r in result["rows"]]
    assert names == ["import tensorflow", "import tensorflow + keras", "import the training modules",
                     "Predictor.pretrained() from Python", "predict command",
                     "predict command, light install (LiteRT)", "import torch"]
    assert len(seen) == 2 * len(names)
    assert next(c[2] for c in seen if c[1] == "-m") == "csa_keras.predict"
    api = result["rows"][3]
    assert (api["median_import_s"], api["median_load_s"], api["median_first_photo_s"]) == (0.5, 2.0, 0.25)
    assert all(r["peak_rss_mb"] == 700.0 and len(r["wall_s"]) == 2 for r in result["rows"])
    table = startup.markdown(result)
    assert "| Predictor.pretrained() from Python |" in table and "import 0.50, load 2.00, first photo 0.25" in table
    light = next(c for c in seen if c[-4:-2] == ["-m", "csa_keras.predict"] and c[0] != sys.executable)
    assert Path(light[0]).name == "python" and result["install_mb"]["light"] < result["install_mb"]["train"]
    assert "Installed size:" in table and len(result["load_average"]) == 3


@pytest.mark.slow  # a ResNet-18 at 48x48 traced and trained twice: a minute on two quiet cores
def test_end_to_end_times_the_training_function_against_the_model_alone():
    import end_to_end

    lines = []
    rows = end_to_end.measure(split=0, images=16, epochs=2, batch=8, variants=("plain",),
                              log=lines.append)
    assert lines == ["plain: fit on 16 images, 2 epochs, batch 8"]
    (row,) = rows
    assert row["variant"] == "plain" and row["batch"] == 8 and row["epochs"] == 2
    assert len(row["end_to_end_epochs"]) == len(row["model_only_epochs"]) == 1  # the first is left out
    assert row["end_to_end_images_per_s"] == pytest.approx(row["end_to_end_epochs"][0], abs=0.01)
    assert row["ratio"] == pytest.approx(
        row["end_to_end_images_per_s"] / row["model_only_images_per_s"], abs=2e-3)
    table = end_to_end.markdown(rows)
    assert table.splitlines()[2].startswith(f"| VRN baseline | {row['precision_policy']} | plain | 8 |")
    alone = end_to_end.model_only(split=0, batch=8, steps=1, repeats=3)
    assert len(alone["runs"]) == 3 and alone["model_only_images_per_s"] == sorted(alone["runs"])[1]


def test_end_to_end_sets_the_run_s_policy_and_restores_the_one_before():
    """The benchmark measures under the recipes' ``auto`` policy, as a run trains, and leaves the
    process's policy as it found it for the benchmarks after it."""
    import end_to_end
    import keras

    from csa_keras.training.strategy import resolve_precision

    before = keras.mixed_precision.global_policy().name
    with end_to_end._policy("mixed_bfloat16") as policy:
        assert policy == keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before
    with end_to_end._policy("auto") as policy:
        assert policy == resolve_precision("auto")
    assert keras.mixed_precision.global_policy().name == before


def test_label_stability_moves_each_box_in_eight_directions(tmp_path):
    import numpy as np
    import predict_pipeline
    from PIL import Image

    from csa_keras.data.faces import FaceSettings

    class Fake:
        settings = FaceSettings(size=48, colour=True)
        class_names = ("happy", "sad")

        def classify(self, crops):
            assert crops.shape == (24, 48, 48, 3)
            probabilities = np.tile([0.9, 0.1], (len(crops), 1))
            probabilities[predict_pipeline.SHIFTS.index((1, 1))] = [0.2, 0.8]  # face 1, right-down
            probabilities[8 + predict_pipeline.SHIFTS.index((-1, 0))] = [0.2, 0.8]  # face 2, left
            return probabilities

    records = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.png"
        Image.fromarray(np.full((80, 80, 3), 128, np.uint8)).save(path)
        records.append({"source": str(path), "frame": None, "status": "ok",
                        "box": [20, 20, 30, 30], "label": "happy"})
    records.append({"source": "d", "frame": None, "status": "no_face", "box": None, "label": None})
    found = predict_pipeline.label_stability(Fake(), records)
    assert found == {"faces": 3, "same_label": 2, "stable": 1, "shift_px": 3, "directions": 8}


@contextlib.contextmanager
def stand_in_service(statuses):
    """A local HTTP server answering each POST with the next status of ``statuses``: its URL."""
    import http.server
    import threading

    answers = iter(statuses)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(next(answers))
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_the_serving_row_counts_answers_by_status_and_reports_medians(tmp_path):
    """``benchmarks/serve.py``'s load generator against a stand-in HTTP server answering 200, then 503."""
    import serve

    with stand_in_service([200] * 5 + [503] * 100) as url:
        row = serve.load(url, b"photo", clients=3, requests=12, seconds=60)
    assert row["answers"] == 12 and row["clients"] == 3
    assert row["statuses"] == {"200": 5, "503": 7}
    wall = row["seconds"]  # rounded to the millisecond, so the rate lies within that rounding
    assert 12 / (wall + 0.0005) - 0.005 <= row["requests_per_s"] <= 12 / (wall - 0.0005) + 0.005
    assert row["latency_median_ms"] <= row["latency_p95_ms"]
    table = serve.markdown({"rows": [{**row, "statuses": row["statuses"]}]})
    assert "| 3 |" in table and "200: 5, 503: 7" in table


def test_the_serving_section_names_the_model_it_served(monkeypatch):
    """Without ``--model`` the service runs the package's default model, and the report says which."""
    import run
    import serve

    from csa_keras.inference.loading import DEFAULT_MODEL

    class Stopped:
        def terminate(self):
            pass

        def wait(self, timeout):
            return 0

    with stand_in_service([200] * 10) as url:
        monkeypatch.setattr(serve, "start_service", lambda model: (Stopped(), url, 1.5))
        result = serve.measure(clients=(1,), requests=2, seconds=10, repeats=1, log=lambda m: None)
    assert result["model"] == DEFAULT_MODEL and result["rows"][0]["answers"] == 2
    machine = {"date": "d", "cpu": "c", "cores": 2, "python": "3", "tensorflow": "t", "keras": "k"}
    text = run.render({"machine": machine, "command": "c", "sections": {"serve": result}})
    assert f"`python -m csa_keras.serve` with `{DEFAULT_MODEL}` (up in 1.5 s)" in text


def test_the_slices_lever_cuts_the_same_views_as_the_gather(monkeypatch):
    import levers
    import numpy as np

    from voting_resnet.layers.crop_and_mirror import CropAndMirror

    maps = np.random.default_rng(0).random((2, 12, 12, 3), dtype=np.float32)
    layer = CropAndMirror()
    gathered = np.asarray(layer(maps))
    monkeypatch.setattr(CropAndMirror, "call", CropAndMirror.call)
    levers.slice_crops()
    sliced = np.asarray(CropAndMirror()(maps))
    assert sliced.shape == gathered.shape == (20, 10, 10, 3)
    np.testing.assert_array_equal(sliced, gathered)
    # image 1's sixth view is the top-left crop of its mirrored map
    np.testing.assert_array_equal(sliced[15], maps[1, :10, ::-1][:, :10])


def test_levers_measures_each_variant_at_the_batch_asked(monkeypatch):
    import levers

    calls = []

    def fake_run(command, env=None):
        calls.append((command, env))
        return {"images_per_s": 10.0 if command[3] == "default" else 12.0}, 100.0

    monkeypatch.setattr(throughput, "run_measured", fake_run)
    rows = levers.measure("vrn1", "train", "float32", ["default", "system_allocator"], 2, 1,
                          log=lambda m: None, batch=27)
    assert [c[0][3] for c in calls] == ["default", "system_allocator"] * 2
    assert all(c[0][-1] == "27" for c in calls)
    assert calls[1][1]["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] == "1"
    assert calls[0][1].get("TF_ONEDNN_USE_SYSTEM_ALLOCATOR") == os.environ.get("TF_ONEDNN_USE_SYSTEM_ALLOCATOR")
    assert [r["batch"] for r in rows] == [27, 27]
    assert rows[1]["median_ratio_to_default"] == 1.2
    assert "| VRN split after 1 | train | 27 | float32 |" in levers.markdown(rows)
    calls.clear()
    capped = levers.measure("csa", "train", "float32", ["default", "onednn_off"], 1, 1,
                            log=lambda m: None, isa="avx2")
    assert [c[1]["ONEDNN_MAX_CPU_ISA"] for c in calls] == ["AVX2", "AVX2"]
    assert calls[1][1]["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert capped[0]["isa"] == "avx2 (capped)" and "avx2 (capped) | onednn_off" in levers.markdown(capped)
