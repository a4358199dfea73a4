"""Tree ensembles as double-precision ONNX graphs (`ai.onnx.ml` opset 5 `TreeEnsemble`).

skl2onnx 1.20 writes tree models as the older `TreeEnsembleRegressor`/`Classifier` (opset 1,
float32 thresholds and leaves; with double inputs ONNX Runtime refuses the graph, and its
HistGradientBoosting converter fails on onnx >= 1.20). Float32 leaves cannot reproduce
scikit-learn to 1e-6 on every row, so the estimator is written here instead, from scikit-learn's
fitted trees, as one `TreeEnsemble` node with double splits and leaf weights. The comparisons
and arithmetic are then those of scikit-learn:

- forests (RandomForest, ExtraTrees) compare `float32(x) <= threshold` (scikit-learn casts the
  input to float32 before walking a tree), so the graph casts the features through float32; the
  leaf values are summed and divided by the number of trees, as `predict` does;
- HistGradientBoosting compares the float64 input, sends NaN where the node learned to, and adds
  the baseline to the sum of the trees; classifiers apply the logistic or softmax link.

Only the estimator is built here; `serving.engines` converts the preprocessing with skl2onnx
and merges both graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import ModelProto, TensorProto, helper, numpy_helper
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

TREE_ESTIMATORS = (
    HistGradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestRegressor,
    RandomForestClassifier,
    ExtraTreesRegressor,
    ExtraTreesClassifier,
)
OPSETS = {"": 21, "ai.onnx.ml": 5}
IR_VERSION = 10
FEATURES = "features"
LABEL = "label"
PROBABILITIES = "probabilities"
VARIABLE = "variable"
_SUM = 1  # TreeEnsemble aggregate_function
_LEQ = 0  # TreeEnsemble node mode: go to the true branch when x <= split


class TreeConversionError(Exception):
    """The estimator is a tree model this module cannot write exactly; the message says why."""


@dataclass
class _Ensemble:
    """The flattened attributes of one `TreeEnsemble` node."""

    n_targets: int
    roots: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    true_leaf: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leaf: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    leaf_targets: list[int] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)

    def add_tree(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        missing_left: np.ndarray,
        is_leaf: np.ndarray,
        value: np.ndarray,
        target: int,
    ) -> None:
        """Append one binary tree; `value[i]` is what leaf `i` adds to `target`."""
        leaves = np.flatnonzero(is_leaf)
        inner = np.flatnonzero(~is_leaf)
        leaf_at = {int(n): len(self.leaf_weights) + i for i, n in enumerate(leaves)}
        node_at = {int(n): len(self.features) + i for i, n in enumerate(inner)}
        self.leaf_targets.extend([target] * len(leaves))
        self.leaf_weights.extend(float(value[n]) for n in leaves)
        if len(inner) == 0:  # a single leaf: a split whose branches both reach it
            self.roots.append(len(self.features))
            self._add_node(0, 0.0, (leaf_at[0], 1), (leaf_at[0], 1), 0)
            return
        self.roots.append(node_at[0])
        for n in inner:
            true = (leaf_at[int(left[n])], 1) if is_leaf[left[n]] else (node_at[int(left[n])], 0)
            false = (
                (leaf_at[int(right[n])], 1) if is_leaf[right[n]] else (node_at[int(right[n])], 0)
            )
            self._add_node(int(feature[n]), float(threshold[n]), true, false, int(missing_left[n]))

    def _add_node(
        self,
        feature: int,
        split: float,
        true: tuple[int, int],
        false: tuple[int, int],
        missing_true: int,
    ) -> None:
        self.features.append(feature)
        self.splits.append(split)
        self.true_ids.append(true[0])
        self.true_leaf.append(true[1])
        self.false_ids.append(false[0])
        self.false_leaf.append(false[1])
        self.missing_true.append(missing_true)

    def node(self, source: str, output: str) -> Any:
        """The `TreeEnsemble` node summing every tree into `n_targets` columns."""
        return helper.make_node(
            "TreeEnsemble",
            [source],
            [output],
            domain="ai.onnx.ml",
            n_targets=self.n_targets,
            aggregate_function=_SUM,
            post_transform=0,
            tree_roots=self.roots,
            nodes_featureids=self.features,
            nodes_splits=numpy_helper.from_array(np.array(self.splits, dtype=np.float64)),
            nodes_modes=numpy_helper.from_array(np.full(len(self.splits), _LEQ, dtype=np.uint8)),
            nodes_truenodeids=self.true_ids,
            nodes_trueleafs=self.true_leaf,
            nodes_falsenodeids=self.false_ids,
            nodes_falseleafs=self.false_leaf,
            nodes_missing_value_tracks_true=self.missing_true,
            leaf_targetids=self.leaf_targets,
            leaf_weights=numpy_helper.from_array(np.array(self.leaf_weights, dtype=np.float64)),
        )


def is_tree_model(estimator: Any) -> bool:
    """Whether `tree_ensemble_graph` writes this estimator."""
    return isinstance(estimator, TREE_ESTIMATORS)


def tree_ensemble_graph(estimator: Any, n_features: int) -> ModelProto:
    """An ONNX model from a double `features` matrix to `variable` or `label`/`probabilities`."""
    if isinstance(estimator, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        return _hist_gradient_boosting(estimator, n_features)
    if isinstance(estimator, TREE_ESTIMATORS):
        return _forest(estimator, n_features)
    raise TreeConversionError(f"{type(estimator).__name__} is not a supported tree ensemble")


def _forest(forest: Any, n_features: int) -> ModelProto:
    if forest.n_outputs_ != 1:
        raise TreeConversionError(f"{type(forest).__name__} with {forest.n_outputs_} outputs")
    classifier = hasattr(forest, "classes_")
    n_targets = len(forest.classes_) if classifier else 1
    ensemble = _Ensemble(n_targets)
    for member in forest.estimators_:
        tree = member.tree_
        left, right = tree.children_left, tree.children_right
        is_leaf = left == -1
        missing = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
        value = tree.value[:, 0, :]
        if classifier:  # a tree's predict_proba: the leaf's class weights, normalised
            value = value / value.sum(axis=1, keepdims=True)
        for k in range(n_targets):
            ensemble.add_tree(
                left, right, tree.feature, tree.threshold, missing, is_leaf, value[:, k], k
            )
    count = numpy_helper.from_array(np.array(len(forest.estimators_), dtype=np.float64), "count")
    nodes = [
        helper.make_node("Cast", [FEATURES], ["features32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["features32"], ["features64"], to=TensorProto.DOUBLE),
        ensemble.node("features64", "summed"),
        helper.make_node("Div", ["summed", "count"], [PROBABILITIES if classifier else VARIABLE]),
    ]
    if classifier:
        nodes += _labels(forest.classes_)
    return _model(nodes, [count, *_classes_init(forest)], n_features, n_targets, classifier)


def _hist_gradient_boosting(model: Any, n_features: int) -> ModelProto:
    classifier = hasattr(model, "classes_")
    link = type(model._loss.link).__name__
    if not classifier and link != "IdentityLink":
        raise TreeConversionError(f"HistGradientBoostingRegressor with a {link} link")
    n_targets = model.n_trees_per_iteration_
    ensemble = _Ensemble(n_targets)
    for iteration in model._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise TreeConversionError("HistGradientBoosting with native categorical splits")
            ensemble.add_tree(
                nodes["left"],
                nodes["right"],
                nodes["feature_idx"],
                nodes["num_threshold"],
                nodes["missing_go_to_left"],
                nodes["is_leaf"].astype(bool),
                nodes["value"],
                k,
            )
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1, n_targets)
    raw = "raw" if classifier else VARIABLE
    nodes = [
        ensemble.node(FEATURES, "summed"),
        helper.make_node("Add", ["baseline", "summed"], [raw]),
    ]
    inits = [numpy_helper.from_array(baseline, "baseline")]
    if classifier:
        nodes += _hgb_probabilities(n_targets, raw)
        nodes += _labels(model.classes_)
        inits += _classes_init(model)
        if n_targets == 1:
            inits.append(numpy_helper.from_array(np.ones((1, 1), dtype=np.float64), "one"))
    return _model(nodes, inits, n_features, len(model.classes_) if classifier else 1, classifier)


def _hgb_probabilities(n_targets: int, raw: str) -> list[Any]:
    """The inverse link: logistic for two classes (as [1 - p, p]), softmax for more."""
    if n_targets > 1:
        return [helper.make_node("Softmax", [raw], [PROBABILITIES], axis=1)]
    return [
        helper.make_node("Sigmoid", [raw], ["positive"]),
        helper.make_node("Sub", ["one", "positive"], ["negative"]),
        helper.make_node("Concat", ["negative", "positive"], [PROBABILITIES], axis=1),
    ]


def _labels(classes: np.ndarray) -> list[Any]:
    """The class of the highest probability (the first one on ties, like numpy's argmax)."""
    return [
        helper.make_node("ArgMax", [PROBABILITIES], ["best"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "best"], [LABEL], axis=0),
    ]


def _classes_init(model: Any) -> list[TensorProto]:
    if not hasattr(model, "classes_"):
        return []
    classes = np.asarray(model.classes_)
    if classes.dtype.kind in "iu":
        classes = classes.astype(np.int64)
    elif classes.dtype.kind in "OU":
        classes = classes.astype(str).astype(object)
    elif classes.dtype.kind not in "fb":
        raise TreeConversionError(f"class labels of dtype {classes.dtype}")
    return [numpy_helper.from_array(classes, "classes")]


def _model(
    nodes: list[Any], inits: list[TensorProto], n_features: int, width: int, classifier: bool
) -> ModelProto:
    inputs = [helper.make_tensor_value_info(FEATURES, TensorProto.DOUBLE, [None, n_features])]
    if classifier:
        label_type = next(i for i in inits if i.name == "classes").data_type
        outputs = [
            helper.make_tensor_value_info(LABEL, label_type, [None]),
            helper.make_tensor_value_info(PROBABILITIES, TensorProto.DOUBLE, [None, width]),
        ]
    else:
        outputs = [helper.make_tensor_value_info(VARIABLE, TensorProto.DOUBLE, [None, 1])]
    graph = helper.make_graph(nodes, "tree_ensemble", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid(domain, version) for domain, version in OPSETS.items()]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = IR_VERSION
    return model
