"""The task registry: each task knows its own models, and the registry's order never decides.

A task recognises a loaded model by what its builders write (the CSA by its
layer names, the Voting ResNet by its ``crop_logits`` and ``vote`` outputs
and its ``Voting`` layer), so a third task with a single-output model is
not shadowed by the CSA, and a model no task built is refused in one line
saying what it was.
"""
from types import MappingProxyType

import keras
import numpy as np
import pytest

from csa_keras import tasks
from csa_keras.csa.model import build_classifier, build_encoder
from csa_keras.inference.predictor import Predictor
from csa_keras.inference.probabilities import class_probabilities, num_classes
from csa_keras.tasks import Task, all_tasks, get_task, register, task_of_model
from voting_resnet.models import build_voting_resnet


class Methods(Task):
    """A task's methods, for a one-layer classifier whose one softmax output is ``dummy_scores``."""

    def add_arguments(self, parser):
        parser.add_argument("--width", type=int)

    def config_changes(self, args):
        return {"width": args.width}

    def prepare_dataset(self, config, dataset, log):
        return dataset

    def fit_split(self, config, dataset, split, folder, strategy, *, verbose, log, chief, state, resume):
        raise NotImplementedError("not trained in these tests")

    def write_report(self, out, config, dataset, outcomes, metrics):
        return None

    def summary(self, metrics):
        return f"accuracy {metrics['accuracy']:.2f}"

    def owns(self, model):
        return list(getattr(model, "output_names", None) or []) == ["dummy_scores"]

    def probabilities(self, outputs, **options):
        return np.asarray(outputs, dtype=np.float32)


class DummyTask(Methods):
    """A third task whose model has one softmax output, like the CSA's."""

    name = "dummy"
    title = "Dummy"
    description = "a one-layer classifier"
    model_file = "dummy.keras"
    run_files = ("dummy.keras",)
    packages = ()
    presets = MappingProxyType({})


def _single_output(name: str, output: str) -> keras.Model:
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(4, activation="relu", name="dense")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name=output)(x), name=name)


@pytest.fixture(scope="module")
def csa_model():
    return build_classifier(build_encoder(input_shape=(16, 16, 1), filters=(2, 2, 2, 2)), 3, dense_units=4)


@pytest.fixture(scope="module")
def vrn_model():
    return build_voting_resnet(3, input_shape=(16, 16, 3), split_after=3)


@pytest.fixture
def registry(monkeypatch):
    """The installed tasks in a registry of this test's own, restored afterwards."""
    monkeypatch.setattr(tasks, "_REGISTRY", dict(all_tasks()))
    return tasks._REGISTRY


def test_the_installed_tasks_are_task_instances_with_their_attributes():
    found = all_tasks()
    assert sorted(found) == ["csa", "voting_resnet"]
    for name, task in found.items():
        assert isinstance(task, Task) and task.name == name
        assert task.model_file in task.run_files and task.packages and task.presets
    assert get_task("csa").colour(get_task("csa").presets["smoke"]) is False
    assert get_task("voting_resnet").colour(get_task("voting_resnet").presets["smoke"]) is True


def test_each_task_owns_its_own_model_and_not_the_others(csa_model, vrn_model):
    csa, vrn = get_task("csa"), get_task("voting_resnet")
    assert csa.owns(csa_model) and not vrn.owns(csa_model)
    assert vrn.owns(vrn_model) and not csa.owns(vrn_model)
    assert task_of_model(csa_model) is csa and task_of_model(vrn_model) is vrn


@pytest.mark.parametrize("first", [True, False])
def test_a_third_single_output_task_is_not_shadowed_by_the_csa(registry, csa_model, first):
    dummy, installed = DummyTask(), dict(registry)
    if first:
        registry.clear()
    register(dummy)
    registry.update(installed)
    assert list(registry).index("dummy") == (0 if first else 2)
    model = _single_output("tiny", "dummy_scores")
    assert not get_task("csa").owns(model) and not get_task("voting_resnet").owns(model)
    assert task_of_model(model) is dummy
    assert task_of_model(csa_model) is get_task("csa")
    assert np.allclose(class_probabilities(dummy, model.predict_on_batch(np.zeros((2, 8, 8, 1)))).sum(1), 1)


def test_a_model_no_task_built_is_one_line_saying_what_it_is(registry):
    register(DummyTask())
    plain = _single_output("plain", "scores")
    with pytest.raises(ValueError) as caught:
        task_of_model(plain)
    assert str(caught.value) == ("model must be built by a registered task (CSA, Dummy, Voting ResNet). "
                                 "Received: a model named 'plain' with 1 output (scores)")
    sequential = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(3, activation="softmax")], name="seq")
    with pytest.raises(ValueError, match=r"Received: a model named 'seq' with 1 output$"):
        task_of_model(sequential)
    with pytest.raises(ValueError, match=r"^model must be built by a registered task .* named 'plain'"):
        Predictor(plain)


def test_a_model_two_tasks_claim_is_refused_whatever_the_order(registry, csa_model):
    class Greedy(DummyTask):
        name, title = "greedy", "Greedy"

        def owns(self, model):
            return len(model.outputs) == 1

    register(Greedy())
    with pytest.raises(ValueError, match=r"^model must be built by one task, and CSA and Greedy each claim it\. "
                                         r"Received: a model named 'csa_classifier' with 1 output \(predictions\)$"):
        task_of_model(csa_model)


def test_register_refuses_what_is_not_a_whole_task(registry):
    with pytest.raises(TypeError, match="Received: dict"):
        register({"name": "x"})

    class Unnamed(Methods):
        title, description, model_file, run_files, packages = "U", "u", "u.keras", ("u.keras",), ()
        presets = MappingProxyType({})

    with pytest.raises(TypeError, match="Received: Unnamed without name$"):
        register(Unnamed())

    class Incomplete(Task):
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_the_options_a_task_takes_are_its_probabilities_keywords(csa_model, vrn_model):
    csa, vrn = get_task("csa"), get_task("voting_resnet")
    assert num_classes(vrn, vrn_model, "vrn", voting="hard") == 3
    with pytest.raises(ValueError, match=r"^voting applies to Voting ResNet models, and csa is a CSA model\. "
                                         r"Received: voting='soft'$"):
        num_classes(csa, csa_model, "csa", voting="soft")


def test_a_model_card_describes_the_model_scored_not_only_its_task():
    vrn, csa = get_task("voting_resnet"), get_task("csa")
    baseline = vrn.describe({"split_after": 0, "voting": "soft"})
    assert "plain baseline: no crops, no vote" in baseline and "which vote" not in baseline
    assert vrn.describe({"split_after": 3, "voting": "hard"}).endswith("cut after module 3, hard voting")
    assert vrn.describe({"split_after": [1, 2]}) == vrn.description
    assert csa.describe({"split_after": 0}) == csa.description
