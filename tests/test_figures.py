"""Every figure function, rendered on a tiny result, keeps the rules a reader relies on (tests/figure_rules.py):
titled panels, no two alike; labelled axes; a colourbar on every heatmap, centred for signed values; legends off
the data; no blank panel without a note. The rules are checked too, on figures that break them."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from figure_rules import assert_readable, problems  # noqa: E402

from common.interactions import InteractionResult  # noqa: E402
from common.result import ShapleyResult  # noqa: E402
from LLM.tasks import TASK_NAMES  # noqa: E402

RNG = np.random.default_rng(0)


def result(modes, players, **metadata):
    modes = np.asarray(modes, float)
    return ShapleyResult(modes=modes, se=np.abs(modes) * 0.1 + 1e-3, players=players, orderings=None,
                         intact=modes.sum(0) + 0.1, lesioned=np.full(modes.shape[1:], 0.1), seed=0, sampler="iid",
                         metadata=dict(evaluations=1234, estimator="kadd", **metadata))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_figure_1_and_its_panels(tmp_path):
    from MLP import figures
    for n in (10, 25, 50, 100, 200):
        for reg in ("none", "l1", "l2"):
            for trial in range(2):
                r = result(RNG.normal(size=(n, 10)) * 0.05, list(range(n)),
                           config=dict(n_hidden=n, reg=reg, trial=trial))
                r.save(tmp_path / f"mlp_N{n:03d}_{reg}_t{trial:02d}.npz", intact_accuracy=np.float64(0.9),
                       mean_abs_weight=RNG.random(n), accuracy_without_top=np.float64(0.3),
                       accuracy_without_bottom=np.float64(0.85), k_top=np.int64(max(1, n // 5)))
    assert_readable(figures.figure1(tmp_path))


def test_figure_2_and_the_llm_figures():
    from LLM import figures
    layers, experts = 4, 8
    extra = dict(task_names=np.array(TASK_NAMES), layer_expert=np.array([[l, e] for l in range(layers)
                                                                          for e in range(experts)]))
    experts_run = result(RNG.normal(size=(layers * experts, 9)) * 0.05, [(l, e) for l in range(layers)
                                                                        for e in range(experts)])
    fig, panels = figures.figure2_abc(experts_run, extra)
    assert_readable(fig)
    assert panels["early"] == [0, 1][:len(panels["early"])] and panels["late"]
    removal = dict(ks=np.arange(5), data=np.array("tiny-arithmetic"), n_items=np.array(30),
                   score_lowest=np.linspace(0.6, 0.5, 5), score_highest=np.linspace(0.6, 0.1, 5),
                   score_lowest_se=np.full(5, 0.02), score_highest_se=np.full(5, 0.03))
    assert_readable(figures.figure2_d(removal))
    pairs = InteractionResult(pairs=np.array([[0, 1], [2, 5], [3, 4]]), modes=RNG.normal(size=(3, 9)),
                              se=np.full((3, 9), 0.01), index="SII", first_order=experts_run,
                              metadata=dict(evaluations=99))
    assert_readable(figures.pairs_figure(pairs, list(TASK_NAMES)))
    sub_layers = [f"model.layers.{l}.{kind}" for l in range(30) for kind in ("self_attn", "mlp")]
    units = result(RNG.normal(size=(60, 9)), sub_layers, model="SmolLM2", units="layers", score="logprob")
    units_extra = dict(task_names=np.array(TASK_NAMES), player_layer=np.repeat(np.arange(30), 2))
    fig = figures.units_figure(units, units_extra)
    assert_readable(fig)
    assert "30 layers x (attention, MLP) = 60 units" in fig.axes[0].get_title()
    curve = dict(ks=np.arange(4), score_lowest=np.zeros(4) - 2.0, score_highest=np.linspace(-2, -7, 4),
                 score_lowest_se=np.full(4, 0.1), score_highest_se=np.full(4, 0.2), task=np.array("capitals"),
                 score=np.array("logprob"), n_items=np.array(20))
    assert_readable(figures.units_removal_figure(curve))


def test_the_dcgan_figures_and_the_cluster_lesions():
    from DCGAN import figures
    from DCGAN.lesion_clusters import plot_lesions
    layer = np.repeat(np.arange(4), [6, 4, 3, 3])
    modes = RNG.normal(size=(16, 3, 3, 8, 8)) * 0.1
    intact = RNG.random((3, 3, 8, 8))
    players = [f"blocks.{l}.act[{i}]" for i, l in enumerate(layer)]
    assert_readable(figures.example_filters(modes, layer, players, intact))
    assert_readable(figures.layer_sums_figure(modes, layer, intact, n_show=2))
    assert_readable(figures.claims_by_layer({0: 0.1, 1: 0.2, 2: 0.3}, {0: 0.5, 1: 0.4, 2: 0.3}))
    run = result(modes, players)
    pairs = InteractionResult(pairs=np.array([[0, 1], [2, 3]]), modes=RNG.normal(size=(2, 3, 3, 8, 8)),
                              se=np.full((2, 3, 3, 8, 8), 0.01), index="SII", first_order=run,
                              metadata=dict(evaluations=99))
    assert_readable(figures.filter_pairs_figure(pairs))
    black = (intact, np.zeros_like(intact))  # a cluster whose lesion leaves nothing: said in the panel
    fig = plot_lesions([(intact, intact * 0.5), black], ["cluster 0 (3 filters): lesioned", "cluster 1 (9 filters)"],
                       max_images=3)
    assert_readable(fig)
    assert sum(t.get_text() == "all black" for ax in fig.axes for t in ax.texts) == 3


def ranking_setting(networks=3):
    """A bench_rankings.py setting: networks x (Shapley at two budgets and two seeds, leave-one-out, two randoms)."""
    ks = list(range(0, 11, 2))

    def row(name, family, area):
        return dict(name=name, family=family, metrics=dict(area=[area, None]), evaluations=0 if family == "random"
                    else 11, seconds=0.01, top=list(np.linspace(0.9, 0.9 - area, 6)), bottom=[0.9] * 6)
    rows = [row(f"shapley ({b} orderings' worth)", "shapley", 0.3 + RNG.normal(0, 0.02)) for b in (2, 10)
            for _ in range(2)] + [row("leave-one-out", "leave-one-out", 0.2)] + [row("random", "random", 0.0)] * 2
    return dict(model="MLP N=10", score="accuracy", per_target=None,
                networks=[dict(ks=ks, n=10, rows=rows) for _ in range(networks)])


@pytest.mark.parametrize("networks", [1, 3])
def test_the_removal_curves_and_the_costs(networks):
    from common.ranking_figures import cost_figure, removal_figure
    assert_readable(removal_figure(ranking_setting(networks)))
    assert_readable(cost_figure(ranking_setting(networks)))


def test_the_rules_catch_what_they_name():
    fig, axes = plt.subplots(1, 3)
    axes[0].imshow(RNG.normal(size=(4, 4)), cmap="RdBu_r", vmin=-1, vmax=2)  # no colourbar, off-centre, no title
    axes[1].plot(np.linspace(0, 9, 200), np.linspace(0, 9, 200), label="a line")
    axes[1].legend(loc="center")
    axes[1].set(title="same", xlabel="x", ylabel="y")
    axes[2].plot(range(3))
    axes[2].set(title="same")
    found = "\n".join(problems(fig))
    for said in ("a panel without a title", "a heatmap without a colourbar", "not centred on 0",
                 "its legend covers", "two panels titled 'same'", "'same': its x axis has no label"):
        assert said in found, said
    fig, axes = plt.subplots(1, 2, figsize=(4, 2))
    for ax, side in zip(axes, "ab"):
        ax.plot(range(3))
        ax.set(title=f"{side}: a title far too long for a panel this narrow", xlabel="x", ylabel="y")
    assert any("overlap" in p for p in problems(fig))
