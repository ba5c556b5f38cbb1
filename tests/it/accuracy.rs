//! Routing accuracy on real labeled data from ../shared/data (skipped, with a message, where
//! that folder is absent). Floors sit a little below measured values: they catch regressions,
//! the README reports the measured figures.

use semantic_router::eval::{cross_validate, evaluate, EvalOptions, EvalReport};
use semantic_router::store::{read_labeled_rows, LabeledRow, RowFilter};
use semantic_router::types::ScorerKind;

use crate::common;

fn filter(s: &str) -> RowFilter {
    s.parse().unwrap()
}

fn report(reports: &[EvalReport], kind: ScorerKind) -> &EvalReport {
    reports.iter().find(|r| r.scorer == kind).unwrap()
}

/// Trains on `train`, classifies `test`, and scores `scorers` on the same embeddings.
fn eval(train: &[LabeledRow], test: &[LabeledRow], scorers: Vec<ScorerKind>) -> Vec<EvalReport> {
    let options = EvalOptions {
        scorers,
        ..EvalOptions::default()
    };
    evaluate(
        common::embedder().as_ref(),
        train,
        test,
        &options,
        &|_, _, _| {},
    )
    .unwrap()
}

fn log(set: &str, reports: &[EvalReport]) {
    for r in reports {
        eprintln!(
            "{set}, {}: accuracy {:.4}, macro-F1 {:.4}, ECE {:.4}, OOS AUROC {:?}, n {} (+{} oos)",
            r.scorer.name(),
            r.accuracy,
            r.macro_f1,
            r.ece,
            r.oos.as_ref().map(|o| o.auroc),
            r.n,
            r.n_out_of_scope
        );
    }
}

#[test]
fn clinc150_in_scope_accuracy_and_out_of_scope_detection() {
    let Some(path) = common::shared_data("clinc150.jsonl") else {
        return;
    };
    let train =
        read_labeled_rows(&path, &[filter("split=train"), filter("in_scope=true")]).unwrap();
    let test = read_labeled_rows(&path, &[filter("split=val")]).unwrap();
    let reports = eval(&train, &test, ScorerKind::ALL.to_vec());
    log("CLINC150 train → val", &reports);
    let combined = report(&reports, ScorerKind::Combined);
    assert_eq!(combined.n, 3000);
    assert_eq!(combined.n_out_of_scope, 100);
    // The default scorer beats every single method, and each stays near its known level.
    assert!(combined.accuracy >= 0.95, "combined {}", combined.accuracy);
    for kind in [
        ScorerKind::WeightedKnn,
        ScorerKind::Centroid,
        ScorerKind::TopMean,
    ] {
        assert!(
            combined.accuracy > report(&reports, kind).accuracy,
            "{kind}"
        );
    }
    assert!(report(&reports, ScorerKind::WeightedKnn).accuracy >= 0.88);
    assert!(report(&reports, ScorerKind::Head).accuracy >= 0.94);
    assert!(combined.ece < 0.05, "ECE {}", combined.ece);
    let oos = combined.oos.as_ref().unwrap();
    assert!(oos.auroc >= 0.93, "OOS AUROC {}", oos.auroc);
}

#[test]
fn banking77_five_fold_cross_validation() {
    let Some(path) = common::shared_data("banking77.jsonl") else {
        return;
    };
    let rows = read_labeled_rows(&path, &[filter("split=train")]).unwrap();
    let options = EvalOptions {
        scorers: vec![ScorerKind::Combined, ScorerKind::WeightedKnn],
        ..EvalOptions::default()
    };
    let reports = cross_validate(
        common::embedder().as_ref(),
        &rows,
        5,
        &options,
        &|_, _, _| {},
    )
    .unwrap();
    log("Banking77 5-fold", &reports);
    let combined = report(&reports, ScorerKind::Combined);
    assert_eq!(combined.n, rows.len());
    assert!(combined.accuracy >= 0.925, "combined {}", combined.accuracy);
    assert!(combined.accuracy > report(&reports, ScorerKind::WeightedKnn).accuracy);
}

#[test]
fn dolly_task_types_combined_beats_the_knn_vote() {
    let Some(path) = common::shared_data("dolly.jsonl") else {
        return;
    };
    let train = read_labeled_rows(&path, &[filter("fold=0,1,2,3,4,5")]).unwrap();
    let test = read_labeled_rows(&path, &[filter("fold=6,7")]).unwrap();
    let reports = eval(
        &train,
        &test,
        vec![ScorerKind::Combined, ScorerKind::WeightedKnn],
    );
    log("Dolly folds 0-5 → 6-7", &reports);
    let combined = report(&reports, ScorerKind::Combined).accuracy;
    let knn = report(&reports, ScorerKind::WeightedKnn).accuracy;
    assert!(combined >= knn + 0.03, "combined {combined} vs kNN {knn}");
}

/// Dolly task categories mapped onto the shipped buckets (issue: Dolly → default buckets).
fn dolly_bucket(label: &str) -> Option<&'static str> {
    Some(match label {
        "classification" => "classification",
        "information_extraction" => "extraction",
        "summarization" => "summarization",
        "closed_qa" => "grounded_qa",
        "open_qa" | "general_qa" => "open_qa",
        "brainstorming" => "brainstorming",
        "creative_writing" => "creative_writing",
        _ => return None,
    })
}

/// Every `step`-th row of a file: a deterministic sample spread over the whole file.
fn sample(rows: Vec<LabeledRow>, step: usize) -> Vec<LabeledRow> {
    rows.into_iter().step_by(step).collect()
}

#[test]
fn shipped_archetypes_route_real_task_prompts() {
    let (Some(dolly), Some(gsm8k), Some(mbpp)) = (
        common::shared_data("dolly.jsonl"),
        common::shared_data("gsm8k.jsonl"),
        common::shared_data("mbpp.jsonl"),
    ) else {
        return;
    };
    let mut test: Vec<LabeledRow> = sample(read_labeled_rows(&dolly, &[]).unwrap(), 20)
        .into_iter()
        .filter_map(|r| {
            dolly_bucket(&r.label).map(|b| LabeledRow {
                text: r.text,
                label: b.to_owned(),
                oos_kind: None,
            })
        })
        .collect();
    let n_dolly = test.len();
    test.extend(
        sample(read_labeled_rows(&gsm8k, &[]).unwrap(), 40)
            .into_iter()
            .map(|r| LabeledRow {
                text: r.text,
                label: "math_reasoning".into(),
                oos_kind: None,
            }),
    );
    test.extend(
        sample(read_labeled_rows(&mbpp, &[]).unwrap(), 4)
            .into_iter()
            .map(|r| LabeledRow {
                text: r.text,
                label: "code".into(),
                oos_kind: None,
            }),
    );
    let archetypes: Vec<LabeledRow> = semantic_router::store::ExampleSet::load(
        &common::archetypes_dir(),
        semantic_router::store::Strictness::Archetypes,
    )
    .unwrap()
    .examples()
    .iter()
    .map(|e| LabeledRow {
        text: e.text.clone(),
        label: e.bucket.to_string(),
        oos_kind: None,
    })
    .collect();
    let reports = eval(&archetypes, &test, vec![ScorerKind::Combined]);
    let r = &reports[0];
    let recall = |b: &str| r.per_bucket.get(b).map_or(0.0, |m| m.recall);
    // Per source: Dolly rows carry the seven Dolly buckets, GSM8K math, MBPP code.
    let (mut right, mut total) = (0, 0);
    for (gold, row) in &r.confusion {
        if gold != "math_reasoning" && gold != "code" {
            right += row.get(gold).copied().unwrap_or(0);
            total += row.values().sum::<usize>();
        }
    }
    let dolly = right as f64 / total as f64;
    let mean = (dolly + recall("math_reasoning") + recall("code")) / 3.0;
    eprintln!(
        "shipped archetypes ({}) on {} Dolly + {} GSM8K/MBPP prompts: Dolly {dolly:.4}, GSM8K {:.4}, MBPP {:.4}, mean of the three {mean:.4}",
        r.scorer,
        n_dolly,
        test.len() - n_dolly,
        recall("math_reasoning"),
        recall("code")
    );
    for (b, m) in &r.per_bucket {
        eprintln!(
            "  {b:<18} precision {:.3} recall {:.3} support {}",
            m.precision, m.recall, m.support
        );
    }
    assert_eq!(total, n_dolly);
    assert!(mean >= 0.80, "mean over the three sources {mean}");
    assert!(dolly >= 0.55, "Dolly {dolly}");
    assert!(recall("math_reasoning") >= 0.9 && recall("code") >= 0.85);
}
