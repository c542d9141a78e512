//! Study material (notes, questions, quizzes, short-answer grading) on the real
//! all-MiniLM-L6-v2 model (`AIMESH_MODELS_DIR`), measured on three encyclopedic texts written
//! for the purpose (`tests/fixtures/encyclopedia`). Run with `--nocapture` to see every
//! question generated.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
};

use aimesh_ai::{
    analysis::{
        Analyzer,
        study::{Level, QuestionKind, prose_sentences},
    },
    embed::{EmbedOptions, MiniLm},
    models,
};

const TEXTS: &[(&str, &str)] = &[
    ("moon", include_str!("fixtures/encyclopedia/moon.md")),
    (
        "photosynthesis",
        include_str!("fixtures/encyclopedia/photosynthesis.md"),
    ),
    (
        "aqueducts",
        include_str!("fixtures/encyclopedia/aqueducts.md"),
    ),
];

fn analyzer() -> Analyzer {
    static ENGINE: OnceLock<Arc<MiniLm>> = OnceLock::new();
    Analyzer::new(
        ENGINE
            .get_or_init(|| {
                Arc::new(MiniLm::load(&models::dir_for_tests(), EmbedOptions::default()).unwrap())
            })
            .clone(),
    )
}

/// The shape of a phrase, as the generator sorts distractors.
fn shape(phrase: &str) -> &'static str {
    if phrase.chars().any(|c| c.is_ascii_digit()) {
        "number"
    } else if phrase
        .split_whitespace()
        .all(|w| w.chars().next().is_some_and(char::is_uppercase))
    {
        "name"
    } else {
        "common"
    }
}

#[tokio::test]
async fn quizzes_are_grounded_plausible_and_without_repeats() {
    let analyzer = analyzer();
    let kinds = [
        QuestionKind::MultipleChoice,
        QuestionKind::TrueFalse,
        QuestionKind::ShortAnswer,
    ];
    let (mut total, mut same_shape, mut options_checked) = (0, 0, 0);
    for (name, text) in TEXTS {
        let sentences = prose_sentences(text);
        for level in [Level::Easy, Level::Medium, Level::Hard] {
            let quiz = analyzer.quiz(text, 8, level, &kinds).await.unwrap();
            assert_eq!(quiz.engine, "minilm-cloze");
            assert!(quiz.questions.len() >= 6, "{name} {level:?}: {quiz:#?}");
            let mut prompts = HashSet::new();
            let mut cited = HashSet::new();
            for q in &quiz.questions {
                // Grounded: the cited sentence is the text's, at its index.
                assert_eq!(sentences[q.sentence_index], q.sentence, "{q:#?}");
                assert!(prompts.insert(q.prompt.clone()), "repeated: {q:#?}");
                assert!(
                    cited.insert(q.sentence_index),
                    "one question per sentence: {q:#?}"
                );
                match q.kind {
                    QuestionKind::MultipleChoice => {
                        assert_eq!(q.options.len(), 4, "{q:#?}");
                        let distinct: HashSet<_> = q.options.iter().collect();
                        assert_eq!(distinct.len(), 4, "{q:#?}");
                        assert!(q.options.contains(&q.answer), "{q:#?}");
                        assert!(q.sentence.contains(&q.answer), "{q:#?}");
                        assert!(q.prompt.contains("_____"), "{q:#?}");
                        for option in q.options.iter().filter(|o| **o != q.answer) {
                            options_checked += 1;
                            if shape(option) == shape(&q.answer) {
                                same_shape += 1;
                            }
                            assert!(!q.sentence.contains(option.as_str()), "{q:#?}");
                        }
                    }
                    QuestionKind::TrueFalse => {
                        assert_eq!(q.options, vec!["True", "False"]);
                        let statement = q.prompt.trim_start_matches("True or false: ");
                        assert_eq!(statement == q.sentence, q.answer == "True", "{q:#?}");
                    }
                    QuestionKind::ShortAnswer => {
                        assert!(q.options.is_empty());
                        let answer = q.answer.to_lowercase();
                        assert!(q.sentence.to_lowercase().contains(&answer), "{q:#?}");
                    }
                }
                total += 1;
                if level == Level::Medium {
                    println!(
                        "[{name}] {:?} {}\n    options: {:?}\n    answer: {}\n    cites: {}",
                        q.kind, q.prompt, q.options, q.answer, q.sentence
                    );
                }
            }
        }
    }
    println!(
        "questions: {total}; multiple-choice distractors of the answer's shape: {same_shape} of \
         {options_checked}"
    );
    // Names for names, numbers for numbers, common phrases for common phrases.
    assert!(
        same_shape * 10 >= options_checked * 9,
        "{same_shape} of {options_checked}"
    );
}

#[tokio::test]
async fn questions_are_answered_by_quoted_sentences() {
    let analyzer = analyzer();
    for (name, text) in TEXTS {
        let sentences = prose_sentences(text);
        let qa = analyzer.questions(text, 5).await.unwrap();
        assert_eq!(qa.engine, "minilm-extractive-qa");
        assert!(qa.pairs.len() >= 4, "{name}: {qa:#?}");
        let questions: HashSet<_> = qa.pairs.iter().map(|p| &p.question).collect();
        assert_eq!(questions.len(), qa.pairs.len(), "no repeats");
        for pair in &qa.pairs {
            assert_eq!(sentences[pair.sentence_index], pair.passage);
            assert!(
                pair.passage
                    .to_lowercase()
                    .contains(&pair.answer.to_lowercase()),
                "{pair:#?}"
            );
            assert!(pair.question.ends_with('?'));
            println!(
                "[{name}] Q: {}\n    A: {}\n    passage: {}\n    follow-ups: {:?}",
                pair.question, pair.answer, pair.passage, pair.follow_ups
            );
        }
        assert!(
            qa.pairs.iter().any(|p| !p.follow_ups.is_empty()),
            "{name}: some answer leads further: {qa:#?}"
        );
    }
}

#[tokio::test]
async fn study_notes_follow_the_text_sections() {
    let analyzer = analyzer();
    let notes = analyzer.study_notes(TEXTS[0].1).await.unwrap();
    assert_eq!(notes.engine, "minilm-notes");
    let headings: Vec<&str> = notes.sections.iter().map(|s| s.heading.as_str()).collect();
    assert_eq!(headings, vec!["The Moon", "Surface", "Exploration"]);
    let sentences = prose_sentences(TEXTS[0].1);
    for section in &notes.sections {
        assert!(!section.key_points.is_empty() && section.key_points.len() <= 3);
        assert!(section.key_points.iter().all(|p| sentences.contains(p)));
        assert!(!section.key_terms.is_empty());
    }
    assert_eq!(notes.overview.len(), 3);
    assert_eq!(notes.key_terms.len(), 8);
    println!("{notes:#?}");
}

#[tokio::test]
async fn short_answers_are_graded_by_meaning() {
    let analyzer = analyzer();
    let reference = "Neil Armstrong";
    let exact = analyzer
        .grade_short_answer("neil armstrong", reference)
        .await
        .unwrap();
    assert!(exact.correct, "{exact:?}");
    let surname = analyzer
        .grade_short_answer("Armstrong", reference)
        .await
        .unwrap();
    assert!(
        surname.overlap > 0.0 && surname.overlap < 1.0,
        "{surname:?}"
    );
    let wrong = analyzer
        .grade_short_answer("Buzz Aldrin", reference)
        .await
        .unwrap();
    assert!(!wrong.correct, "{wrong:?}");
    assert!(wrong.feedback.contains(reference));
    let paraphrase = analyzer
        .grade_short_answer(
            "the single natural moon that goes around the Earth",
            "the only natural satellite of Earth",
        )
        .await
        .unwrap();
    assert!(paraphrase.correct, "{paraphrase:?}");
    let empty = analyzer.grade_short_answer("  ", reference).await.unwrap();
    assert!(!empty.correct && empty.feedback.contains("no answer"));
}
