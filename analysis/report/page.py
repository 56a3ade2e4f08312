"""Writing the run report: ``REPORTS_DIR/<run id>/index.html`` with its figures, one per
run, and ``REPORTS_DIR/index.html``, the history across runs.

Everything is read back from ML Metadata and the artifacts it points to (the sections'
docstrings say which), so the report of any past run can be rebuilt from the store
(``imdb-tfx report RUN_ID``), for any orchestrator that wrote it.
"""

import concurrent.futures
import dataclasses
import datetime
import json
import os
import re
import shutil
import tempfile

from ml_metadata.proto import metadata_store_pb2

from analysis.report import collect, sections, templates

INDEX = "index.html"
# Golden-test reviews scored to find the ones the report explains: the first this many
# of the test split with at most EXPLAIN_MAX_WORDS words (of at most EXPLAIN_SCAN read),
# of which the shortest right and wrong ones are shown. Scoring only short reviews keeps
# the candidate's first call cheap: a 500-word batch costs the report a second more.
EXPLAIN_CANDIDATES = 16
EXPLAIN_MAX_WORDS = 160
EXPLAIN_SCAN = 512
FACETS_PAGE = "statistics_facets.html"
HISTORY_PLOT = "history.png"


def run_dir_name(run_id: str) -> str:
  """A run id as a folder and URL path segment: characters other than letters, digits,
  ``.``, ``_`` and ``-`` become ``-`` (``2026-12-01T05:30:00.12`` ->
  ``2026-12-01T05-30-00.12``); an id of dots only gets a ``run`` prefix, so the folder is
  never ``.`` or ``..``."""
  name = re.sub(r"[^A-Za-z0-9._-]", "-", run_id)
  return name if name.strip(".") else f"run{name}"


@dataclasses.dataclass(frozen=True)
class ReportSettings:
  """What a report shows beyond the store's artifacts.

  Attributes:
    explain: golden-test reviews to explain with attention heatmaps, right and wrong
      ones together (0: none, and the model is not loaded).
    facets: also write TFDV's Facets Overview page (``get_statistics_html``), which loads
      Facets from the network; the report itself never does.
  """

  explain: int = 4
  facets: bool = True


def write_run_report(
  connection_config: metadata_store_pb2.ConnectionConfig,
  pipeline_name: str,
  run_id: str,
  reports_dir: str,
  settings: ReportSettings = ReportSettings(),
  history: bool = True,
) -> str:
  """Writes the report of run ``run_id`` and, with ``history``, refreshes the history page
  (``write_history_page``; a caller writing several runs' pages refreshes it once after).

  The page is built in a temporary folder beside its destination and moved into place
  whole, so a crash never leaves a half-written report, and a rebuilt report replaces
  the old one at once.

  Returns:
    the path of the run's ``index.html``.

  Raises:
    FileNotFoundError: a SQLite store that does not exist.
    ValueError: no such run.
  """
  run = collect.collect_run(connection_config, pipeline_name, run_id)
  os.makedirs(reports_dir, exist_ok=True)
  final_dir = os.path.join(reports_dir, run_dir_name(run_id))
  staging = tempfile.mkdtemp(prefix=".staging-", dir=reports_dir)
  try:
    with open(os.path.join(staging, INDEX), "w", encoding="utf-8") as f:
      f.write(render_run_page(run, staging, settings))
    os.chmod(staging, 0o755)  # mkdtemp's folder is the owner's only; a report is not
    if os.path.isdir(final_dir):
      shutil.rmtree(final_dir)
    os.rename(staging, final_dir)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  if history:
    write_history_page(connection_config, pipeline_name, reports_dir)
  return os.path.join(final_dir, INDEX)


def render_run_page(run: collect.RunArtifacts, out_dir: str, settings: ReportSettings) -> str:
  """The run page's HTML; its figures are written into ``out_dir``."""
  verdict = _verdict(run)
  # The candidate loads (seconds: TensorFlow rebuilds every function of the SavedModel)
  # while the other sections are drawn.
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    explaining = pool.submit(explain_golden_reviews, run, settings)
    bodies = [
      ("data", "Data", _data(run, out_dir, settings)),
      ("training", "Training", _training(run, out_dir)),
      ("evaluation", "Evaluation", _evaluation(run, out_dir)),
      ("behaviour", "Behavioural suite", _behaviour(run)),
    ]
    reviews = explaining.result()
  if reviews:
    bodies.append(("explanations", "Explanations", sections.explanations_section(reviews, out_dir)))
  bodies.append(("lineage", "Lineage", sections.lineage_section(_lineage(run))))
  bodies = [(i, name, templates.markup(html)) for i, name, html in bodies if html]
  body = templates.render(
    "run.html",
    run_id=run.run_id,
    pipeline=run.pipeline_name,
    started=_utc(run.started),
    seconds=f"{sum(n.seconds for n in run.nodes.values()):.1f}",
    sections=[(i, name) for i, name, _ in bodies],
    bodies=bodies,
    **verdict,
  )
  return templates.page(f"Run {run.run_id}", body)


def _verdict(run: collect.RunArtifacts) -> dict:
  """Blessed (None when nothing judged), the reasons, the pushed version and path, and
  the failed component."""
  from pipeline import mlmd_queries
  from pipeline.summary import blessing_verdict, pushed_destination

  blessed, reasons = blessing_verdict(
    run.output("Evaluator", "evaluation"),
    run.output("Evaluator", "blessing"),
    run.output("BehaviourValidator", "behaviour_blessing"),
  )
  pushed = run.output("Pusher", "pushed_model")
  pusher = run.nodes.get("Pusher")
  pushed_path = pushed_destination(pushed, pusher is not None and pusher.state == "CACHED")
  failed = [n.node_id for n in run.nodes.values() if n.state == "FAILED"]
  return {
    "blessed": blessed,
    "reasons": reasons,
    "pushed_path": pushed_path,
    "pushed_version": mlmd_queries.custom_property(pushed, "pushed_version")
    if pushed_path
    else None,
    "failed_at": failed[0] if failed else None,
  }


def _data(run, out_dir, settings) -> str:
  statistics = run.output("StatisticsGen", "statistics")
  if statistics is None:
    return ""
  stats = collect.load_statistics(statistics)
  anomalies = run.output("ExampleValidator", "anomalies")
  drift = run.output("DistributionValidator", "anomalies")
  rejections = None
  rejected = run.output("ReviewExampleGen", "rejected_rows")
  if rejected is not None:
    rejections = _rejections(rejected)
  facets = None
  if settings.facets and "train" in stats:
    facets = _write_facets(stats, out_dir)
  gate = run.nodes.get("DriftGate")
  return sections.data_section(
    stats,
    collect.load_anomalies(anomalies) if anomalies is not None else {},
    out_dir,
    drift=collect.load_anomalies(drift) if drift is not None else None,
    drift_stopped=None if gate is None else gate.state == "FAILED",
    rejections=rejections,
    facets_page=facets,
  )


def _rejections(artifact) -> sections.Rejections:
  from components import review_example_gen

  custom = {
    k: v.int_value for k, v in artifact.custom_properties.items() if v.HasField("int_value")
  }
  counts = {
    k: custom[f"num_{k}"]
    for k in ("rows", "reviews", "rejected", "golden_duplicates")
    if f"num_{k}" in custom
  }
  by_reason = {
    k[len("num_rejected_") :]: v for k, v in custom.items() if k.startswith("num_rejected_")
  }
  first = [
    {"file": r.file, "line": r.line, "reason": f"{r.reason}: {r.detail}"}
    for r in review_example_gen.first_rejections(artifact.uri)
  ]
  return sections.Rejections(counts, by_reason, first)


def _write_facets(stats, out_dir) -> str:
  """TFDV's Facets Overview of train beside the golden test (or eval) split."""
  from tensorflow_data_validation.utils import display_util

  other = "test" if "test" in stats else ("eval" if "eval" in stats else None)
  html = display_util.get_statistics_html(
    stats["train"], stats[other] if other else None, lhs_name="train", rhs_name=other or "rhs"
  )
  with open(os.path.join(out_dir, FACETS_PAGE), "w", encoding="utf-8") as f:
    f.write(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{html}</body></html>')
  return FACETS_PAGE


def _training(run, out_dir) -> str:
  from models.hparams import HParams

  model_run = run.output("Trainer", "model_run")
  if model_run is None:
    return ""
  summary = collect.load_json(model_run.uri, "training_summary.json")
  if summary is None:
    return ""
  config = json.loads(run.nodes["Trainer"].properties.get("custom_config") or "{}")
  monitor = HParams.from_custom_config(config).early_stopping_monitor
  pretraining = None
  pretraining_run = run.output("EmbeddingTrainer", "pretraining_run")
  if pretraining_run is not None:
    pretraining = collect.load_json(pretraining_run.uri, "pretraining_summary.json")
  return sections.training_section(summary, out_dir, monitor=monitor, pretraining=pretraining)


def _evaluation(run, out_dir) -> str:
  import tensorflow_model_analysis as tfma
  from google.protobuf import json_format

  from core import features

  evaluation = run.output("Evaluator", "evaluation")
  if evaluation is None:
    return ""
  eval_config = json_format.Parse(
    run.nodes["Evaluator"].properties.get("eval_config") or "{}", tfma.EvalConfig()
  )
  by_span = any(features.SPAN_KEY in s.feature_keys for s in eval_config.slicing_specs)
  return sections.evaluation_section(
    tfma.load_metrics(evaluation.uri),
    tfma.load_plots(evaluation.uri),
    tfma.load_validation_result(evaluation.uri),
    eval_config,
    out_dir,
    golden_slice=((features.SPAN_KEY, features.GOLDEN_SPAN),) if by_span else (),
  )


def _behaviour(run) -> str:
  from behaviour import suite
  from components.behaviour_validator import parse_thresholds
  from pipeline.summary import behaviour_rates, behaviour_reasons

  node = run.nodes.get("BehaviourValidator")
  report = run.output("BehaviourValidator", "report")
  if node is None or report is None:
    return ""
  blessing = run.output("BehaviourValidator", "behaviour_blessing")
  return sections.behaviour_section(
    behaviour_rates(report),
    parse_thresholds(node.properties.get("thresholds") or ""),
    behaviour_reasons(blessing) if blessing is not None else [],
    test_types={c.name: c.test_type for c in suite.CAPABILITIES},
  )


def explain_golden_reviews(run, settings) -> list[sections.ExplainedReview]:
  """Up to ``settings.explain`` golden-test reviews with the candidate's attention: the
  shortest wrong ones (at most half) and the shortest right ones among the first
  ``EXPLAIN_CANDIDATES`` short ones (``_golden_reviews``); empty when the run has no
  model or golden Examples."""
  from analysis import explain

  model = run.output("Trainer", "model")
  golden = run.output("ImdbExampleGen", "examples")
  if not settings.explain or model is None or golden is None:
    return []
  reviews = _golden_reviews(golden.uri, EXPLAIN_CANDIDATES, EXPLAIN_MAX_WORDS, EXPLAIN_SCAN)
  if not reviews:
    return []
  explained = explain.explain(
    os.path.join(model.uri, "Format-Serving"), [text for text, _ in reviews]
  )
  scored = [sections.ExplainedReview(label, e) for (_, label), e in zip(reviews, explained)]
  short = sorted(
    (r for r in scored if len(r.explanation.tokens) <= EXPLAIN_MAX_WORDS),
    key=lambda r: len(r.explanation.tokens),
  )
  wrong = [r for r in short if not r.correct][: settings.explain // 2]
  right = [r for r in short if r.correct][: settings.explain - len(wrong)]
  return right + wrong


def _golden_reviews(examples_uri: str, n: int, max_words: int, scan: int) -> list[tuple[str, int]]:
  """The first ``n`` (text, label) pairs with at most ``max_words`` whitespace-separated
  words among the first ``scan`` reviews of the golden ``test`` split of ImdbExampleGen's
  Examples (gzipped TFRecords of tf.Example); fewer when fewer are that short."""
  import tensorflow as tf

  from core import features

  pattern = os.path.join(examples_uri, "Split-test", "*")
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    return []
  reviews = []
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(scan):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    text = feature[features.TEXT_KEY].bytes_list.value[0].decode("utf-8")
    if len(text.split()) <= max_words:
      reviews.append((text, int(feature[features.LABEL_KEY].int64_list.value[0])))
      if len(reviews) == n:
        break
  return reviews


def _lineage(run) -> list[dict]:
  def artifacts(by_key):
    out = []
    for key, found in by_key.items():
      for a in found:
        span = a.properties.get("span")
        version = a.properties.get("version")
        out.append(
          {
            "key": key,
            "type": run.type_names.get(a.type_id, "?"),
            "id": a.id,
            "uri": a.uri,
            "span": span.int_value if span is not None else None,
            "version": version.int_value if version is not None else None,
          }
        )
    return out

  return [
    {
      "node_id": n.node_id,
      "state": n.state,
      "seconds": f"{n.seconds:.1f}",
      "inputs": artifacts(n.inputs),
      "outputs": artifacts(n.outputs),
    }
    for n in run.nodes.values()
  ]


def write_history_page(
  connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str, reports_dir: str
) -> str:
  """Writes ``reports_dir/index.html``: every run's candidate on the golden test split
  (accuracy and AUC plotted, blessed ones filled), with a table linking each run's page
  where one was written. Returns its path.

  Raises:
    FileNotFoundError: a SQLite store that does not exist.
  """
  from pipeline.history import read_history

  records = read_history(connection_config, pipeline_name)
  os.makedirs(reports_dir, exist_ok=True)
  plot = None
  if any(r.accuracy is not None for r in records):
    from analysis.report import figures

    figures.history_plot(
      [r.accuracy for r in records],
      [r.auc for r in records],
      [r.blessed for r in records],
      _staged_path(reports_dir, HISTORY_PLOT),
    )
    plot = HISTORY_PLOT
  runs = []
  for r in records:
    page = os.path.join(run_dir_name(r.run_id), INDEX)
    runs.append(
      {
        "run_id": r.run_id,
        "link": page if os.path.exists(os.path.join(reports_dir, page)) else None,
        "started": _utc(r.started),
        "span": "-" if r.span is None else r.span,
        "trainer": r.trainer or "-",
        "accuracy": "-" if r.accuracy is None else f"{r.accuracy:.4f}",
        "accuracy_value": r.accuracy,
        "auc": "-" if r.auc is None else f"{r.auc:.4f}",
        "suite": "-" if r.behaviour_failure_rate is None else f"{r.behaviour_failure_rate:.3f}",
        "blessed": {None: "-", True: "yes", False: "no"}[r.blessed],
        "blessed_class": {None: "", True: "pass", False: "fail"}[r.blessed],
        "pushed": r.pushed_version or "-",
        "why": r.failed_at or "; ".join(w.split(", e.g. ")[0] for w in r.not_blessed) or "",
      }
    )
  html = templates.page(
    f"Runs of {pipeline_name}",
    templates.render("history.html", pipeline=pipeline_name, plot=plot, runs=runs),
  )
  path = os.path.join(reports_dir, INDEX)
  staged = _staged_path(reports_dir, INDEX)
  with open(staged, "w", encoding="utf-8") as f:
    f.write(html)
  if plot:
    os.replace(_staged_path(reports_dir, plot), os.path.join(reports_dir, plot))
  os.replace(staged, path)
  return path


def _staged_path(directory: str, name: str) -> str:
  """Where ``name`` is written before it replaces the file of that name at once."""
  return os.path.join(directory, f".{name}.tmp")


def _utc(seconds: float) -> str:
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
    "%Y-%m-%d %H:%M:%S"
  )
