//! Rule-based sentiment in the manner of VADER (Hutto & Gilbert, 2014): a valence lexicon
//! (written for aimesh, a few hundred common English words rated from −4 to +4), with the
//! rules that matter most: negation flips and damps a word's valence ("not good"), boosters
//! and dampeners scale it ("very good", "slightly bad"), a word in capitals among lower-case
//! text is emphasised, "but" shifts the weight to what follows it, and exclamation marks
//! amplify the whole. The sum is squashed into a compound score in [−1, 1].

use super::text::words;

/// The engine's name in results.
pub const ENGINE: &str = "lexicon";

/// Compound score at or above which text is positive (and at or below whose negation it is
/// negative); VADER's usual threshold.
pub const THRESHOLD: f32 = 0.05;

/// Scale of a negated valence (VADER's `N_SCALAR`).
const NEGATION_SCALAR: f32 = -0.74;
/// Added to a valence by a booster (subtracted by a dampener).
const BOOST: f32 = 0.293;
/// Added to a valence by capitals for emphasis.
const CAPS_BOOST: f32 = 0.733;
/// Added per exclamation mark (at most four) to the sum, in its direction.
const EXCLAMATION_BOOST: f32 = 0.292;
/// Normalisation constant of the compound score.
const ALPHA: f32 = 15.0;

/// A word's rated valence, from −4 (most negative) to +4 (most positive).
#[rustfmt::skip]
const LEXICON: &[(&str, f32)] = &[
    // Positive.
    ("good", 1.9), ("great", 3.1), ("excellent", 3.2), ("amazing", 2.8), ("awesome", 3.1),
    ("fantastic", 3.0), ("wonderful", 2.9), ("superb", 3.0), ("outstanding", 3.0),
    ("brilliant", 2.8), ("perfect", 2.8), ("nice", 1.8), ("fine", 0.8), ("pleasant", 2.2),
    ("lovely", 2.6), ("beautiful", 2.7), ("gorgeous", 2.8), ("pretty", 1.6), ("love", 3.2),
    ("loved", 2.9), ("loves", 2.7), ("loving", 2.7), ("like", 1.5), ("liked", 1.7),
    ("likes", 1.6), ("enjoy", 2.2), ("enjoyed", 2.3), ("enjoyable", 2.2), ("enjoying", 2.2),
    ("happy", 2.7), ("happily", 2.5), ("happiness", 2.6), ("glad", 2.0), ("pleased", 2.0),
    ("delighted", 2.9), ("delightful", 2.9), ("joy", 2.8), ("joyful", 2.9), ("cheerful", 2.4),
    ("excited", 2.1), ("exciting", 2.2), ("thrilled", 2.8), ("satisfied", 1.9),
    ("satisfying", 2.0), ("impressive", 2.4), ("impressed", 2.2), ("recommend", 1.8),
    ("recommended", 1.8), ("best", 3.0), ("better", 1.8), ("improve", 1.6), ("improved", 1.8),
    ("improvement", 1.7), ("success", 2.6), ("successful", 2.6), ("succeed", 2.2),
    ("win", 2.6), ("won", 2.4), ("winner", 2.6), ("winning", 2.4), ("benefit", 1.8),
    ("beneficial", 2.0), ("helpful", 1.9), ("useful", 1.8), ("valuable", 2.1), ("worth", 1.4),
    ("worthy", 1.8), ("reliable", 1.8), ("fast", 1.0), ("quick", 0.9), ("easy", 1.7),
    ("easily", 1.5), ("smooth", 1.4), ("clean", 1.5), ("fresh", 1.4), ("friendly", 2.2),
    ("kind", 2.0), ("kindness", 2.3), ("generous", 2.3), ("caring", 2.1), ("warm", 1.3),
    ("comfortable", 1.8), ("safe", 1.8), ("secure", 1.5), ("calm", 1.3), ("relaxed", 1.8),
    ("relaxing", 1.9), ("peaceful", 2.2), ("fun", 2.3), ("funny", 1.9), ("cool", 1.3),
    ("favorite", 2.0), ("favourite", 2.0), ("fabulous", 2.9), ("incredible", 2.5),
    ("remarkable", 2.2), ("terrific", 2.9), ("marvelous", 2.9), ("marvellous", 2.9),
    ("splendid", 2.7), ("exceptional", 2.7), ("positive", 2.0), ("proud", 2.0),
    ("grateful", 2.3), ("thankful", 2.2), ("thanks", 1.9), ("thank", 1.6), ("appreciate", 2.0),
    ("appreciated", 2.1), ("admire", 2.1), ("praise", 2.4), ("praised", 2.3), ("hope", 1.6),
    ("hopeful", 1.9), ("optimistic", 2.1), ("confident", 2.0), ("strong", 1.3),
    ("stronger", 1.3), ("healthy", 1.8), ("win-win", 2.5), ("gain", 1.6), ("gains", 1.6),
    ("profit", 1.8), ("profitable", 1.9), ("growth", 1.4), ("thrive", 2.2), ("thriving", 2.2),
    ("boost", 1.6), ("boosted", 1.6), ("rally", 1.4), ("rallied", 1.4), ("surge", 1.2),
    ("soared", 1.5), ("record", 0.6), ("award", 2.1), ("awarded", 2.0), ("celebrate", 2.6),
    ("celebrated", 2.4), ("victory", 2.8), ("triumph", 2.8), ("elegant", 2.2), ("charming", 2.4),
    ("adorable", 2.5), ("sweet", 2.0), ("tasty", 2.2), ("delicious", 2.7), ("yummy", 2.4),
    ("solid", 1.2), ("stable", 1.0), ("efficient", 1.8), ("effective", 1.7), ("accurate", 1.6),
    ("correct", 1.3), ("right", 0.8), ("clear", 1.0), ("simple", 0.8), ("intuitive", 1.8),
    ("polished", 1.7), ("powerful", 1.8), ("innovative", 2.0), ("creative", 1.9),
    ("inspiring", 2.4), ("inspired", 2.1), ("trust", 1.9), ("trusted", 1.9), ("honest", 2.0),
    ("fair", 1.3), ("welcome", 2.0), ("welcomed", 1.9), ("wow", 2.5), ("yay", 2.4),
    ("glorious", 2.9), ("blessed", 2.5), ("lucky", 2.0), ("fortunate", 2.1), ("smile", 1.9),
    ("smiled", 1.8), ("laugh", 2.0), ("laughed", 1.9), ("heal", 1.7), ("healed", 1.8),
    ("rescue", 1.5), ("rescued", 1.7), ("support", 1.6), ("supportive", 2.0), ("agree", 1.3),
    ("approve", 1.6), ("approved", 1.5), ("affordable", 1.5), ("bargain", 1.4),
    ("flawless", 2.9), ("masterpiece", 3.1), ("recovered", 1.4), ("recovery", 1.4),
    // Negative.
    ("bad", -2.5), ("terrible", -3.1), ("awful", -3.1), ("horrible", -3.2), ("dreadful", -3.0),
    ("poor", -2.0), ("worse", -2.3), ("worst", -3.1), ("hate", -2.9), ("hated", -3.0),
    ("hates", -2.8), ("hating", -2.8), ("dislike", -1.7), ("disliked", -1.8), ("sad", -2.1),
    ("sadly", -1.9), ("sadness", -2.3), ("unhappy", -2.2), ("angry", -2.3), ("anger", -2.5),
    ("furious", -2.9), ("mad", -2.0), ("annoyed", -1.9), ("annoying", -2.1), ("irritating", -2.0),
    ("frustrated", -2.2), ("frustrating", -2.2), ("frustration", -2.1), ("disappointed", -2.2),
    ("disappointing", -2.3), ("disappointment", -2.3), ("upset", -1.9), ("miserable", -2.9),
    ("depressed", -2.5), ("depressing", -2.4), ("afraid", -2.0), ("scared", -2.0),
    ("fear", -2.2), ("feared", -2.0), ("fears", -2.0), ("terrified", -2.9), ("worried", -1.9),
    ("worry", -1.9), ("worrying", -2.0), ("anxious", -1.8), ("nervous", -1.3),
    ("boring", -1.8), ("bored", -1.6), ("dull", -1.7), ("ugly", -2.3), ("gross", -2.1),
    ("disgusting", -3.0), ("nasty", -2.6), ("rude", -2.0), ("mean", -1.2), ("cruel", -2.8),
    ("evil", -3.3), ("wicked", -2.3), ("wrong", -2.1), ("fail", -2.5), ("failed", -2.3),
    ("fails", -2.3), ("failing", -2.3), ("failure", -2.6), ("broken", -2.1), ("break", -0.8),
    ("broke", -1.8), ("crash", -1.8), ("crashed", -2.1), ("crashes", -2.0), ("bug", -1.3),
    ("buggy", -2.0), ("slow", -1.2), ("sluggish", -1.6), ("useless", -2.5), ("worthless", -2.8),
    ("waste", -2.0), ("wasted", -2.1), ("expensive", -1.1), ("overpriced", -1.9),
    ("problem", -1.7), ("problems", -1.7), ("issue", -0.9), ("issues", -1.0), ("trouble", -1.9),
    ("difficult", -1.3), ("hard", -0.6), ("painful", -2.3), ("pain", -2.3), ("hurt", -2.4),
    ("hurts", -2.2), ("injured", -2.2), ("sick", -2.0), ("ill", -1.8), ("disease", -2.0),
    ("dead", -3.0), ("death", -2.9), ("die", -2.9), ("died", -2.6), ("dying", -2.8),
    ("kill", -3.2), ("killed", -3.3), ("murder", -3.6), ("war", -2.9), ("attack", -2.1),
    ("attacked", -2.2), ("violence", -3.0), ("violent", -2.9), ("crime", -2.5),
    ("criminal", -2.4), ("disaster", -3.1), ("catastrophe", -3.4), ("catastrophic", -3.3),
    ("tragedy", -3.2), ("tragic", -3.0), ("crisis", -2.5), ("loss", -1.9), ("losses", -1.9),
    ("lose", -1.8), ("lost", -1.5), ("losing", -1.8), ("decline", -1.4), ("declined", -1.4),
    ("drop", -0.9), ("dropped", -1.0), ("fell", -1.0), ("plunged", -2.0), ("plunge", -1.9),
    ("collapse", -2.4), ("collapsed", -2.4), ("recession", -2.2), ("bankrupt", -2.6),
    ("bankruptcy", -2.6), ("debt", -1.4), ("unemployment", -1.9), ("layoffs", -2.0),
    ("fraud", -2.9), ("scam", -2.7), ("lie", -1.9), ("lies", -2.0), ("liar", -2.6),
    ("stupid", -2.4), ("dumb", -2.2), ("idiot", -2.6), ("ridiculous", -1.9), ("absurd", -1.6),
    ("pathetic", -2.6), ("lame", -1.8), ("mediocre", -1.4), ("inferior", -1.8),
    ("unreliable", -2.0), ("unstable", -1.7), ("unsafe", -2.1), ("dangerous", -2.2),
    ("danger", -2.3), ("threat", -2.2), ("threatened", -2.1), ("risk", -1.1), ("risky", -1.4),
    ("damage", -2.2), ("damaged", -2.2), ("destroy", -2.8), ("destroyed", -2.9),
    ("ruin", -2.5), ("ruined", -2.6), ("mess", -1.8), ("messy", -1.5), ("dirty", -1.8),
    ("filthy", -2.4), ("smelly", -1.9), ("noisy", -1.3), ("crowded", -1.0), ("late", -0.8),
    ("delay", -1.3), ("delayed", -1.4), ("cancelled", -1.3), ("canceled", -1.3),
    ("complain", -1.6), ("complaint", -1.6), ("complained", -1.6), ("regret", -2.0),
    ("sorry", -0.9), ("shame", -2.1), ("ashamed", -2.2), ("embarrassing", -1.9),
    ("embarrassed", -1.8), ("guilty", -1.9), ("lonely", -2.2), ("alone", -1.0),
    ("cry", -2.1), ("cried", -2.1), ("crying", -2.1), ("tears", -1.6), ("grief", -2.7),
    ("horrific", -3.3), ("horror", -2.8), ("nightmare", -2.9), ("hopeless", -2.7),
    ("helpless", -2.2), ("weak", -1.6), ("weaker", -1.5), ("negative", -2.1), ("rejected", -2.0),
    ("reject", -1.7), ("refused", -1.4), ("deny", -1.2), ("denied", -1.3), ("ban", -1.5),
    ("banned", -1.6), ("blame", -1.8), ("blamed", -1.9), ("suffer", -2.3), ("suffered", -2.3),
    ("suffering", -2.5), ("sucks", -2.0), ("sucked", -2.0), ("unfortunately", -1.6),
    ("unfortunate", -1.7), ("poorly", -1.9), ("badly", -2.1), ("confusing", -1.4),
    ("confused", -1.3), ("inconvenient", -1.5), ("hostile", -2.3), ("toxic", -2.6),
    ("outrage", -2.6), ("outraged", -2.6), ("scandal", -2.3), ("corrupt", -2.7),
    ("corruption", -2.7), ("poverty", -2.3), ("hunger", -2.2), ("starving", -2.4),
    ("flood", -1.6), ("fire", -1.4), ("storm", -1.0), ("accident", -2.1), ("injury", -2.0),
    ("stolen", -2.2), ("steal", -2.2), ("theft", -2.3), ("abuse", -3.0), ("abused", -3.1),
    ("tired", -1.0), ("exhausted", -1.7), ("stressed", -1.9), ("stressful", -2.0),
    ("meh", -0.8), ("ugh", -1.8), ("crap", -2.3), ("garbage", -2.2), ("junk", -1.9),
];

/// Words that scale the valence of a word after them: (word, +1 booster / −1 dampener).
#[rustfmt::skip]
const BOOSTERS: &[(&str, f32)] = &[
    ("very", 1.0), ("really", 1.0), ("extremely", 1.0), ("incredibly", 1.0),
    ("absolutely", 1.0), ("totally", 1.0), ("completely", 1.0), ("utterly", 1.0),
    ("highly", 1.0), ("so", 1.0), ("truly", 1.0), ("especially", 1.0), ("exceptionally", 1.0),
    ("remarkably", 1.0), ("hugely", 1.0), ("deeply", 1.0), ("super", 1.0), ("most", 1.0),
    ("more", 1.0), ("such", 1.0), ("entirely", 1.0), ("thoroughly", 1.0), ("terribly", 1.0),
    ("awfully", 1.0), ("slightly", -1.0), ("somewhat", -1.0), ("barely", -1.0),
    ("marginally", -1.0), ("partly", -1.0), ("kinda", -1.0), ("sorta", -1.0), ("little", -1.0),
    ("fairly", -1.0), ("rather", -1.0), ("mildly", -1.0), ("occasionally", -1.0),
    ("less", -1.0),
];

/// Words that negate a sentiment word within the three words before it.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "cannot",
    "without", "hardly", "rarely", "seldom", "isnt", "arent", "wasnt", "werent", "dont", "doesnt",
    "didnt", "wont", "wouldnt", "cant", "couldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint",
];

/// A text's sentiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentimentLabel {
    /// Compound score at least [`THRESHOLD`].
    Positive,
    /// Compound score at most −[`THRESHOLD`].
    Negative,
    /// Between them (including text with no rated words).
    Neutral,
}

impl SentimentLabel {
    /// The label's name in APIs: `positive`, `negative` or `neutral`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Negative => "negative",
            Self::Neutral => "neutral",
        }
    }
}

/// The result of a sentiment analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentiment {
    /// The label the score implies.
    pub label: SentimentLabel,
    /// Compound score in [−1, 1]: negative below zero, positive above.
    pub score: f32,
    /// The engine that produced it ([`ENGINE`]).
    pub engine: &'static str,
}

/// Rates the sentiment of `text` (any length; empty text is neutral).
pub fn analyze(text: &str) -> Sentiment {
    let tokens = words(text);
    let lower: Vec<String> = tokens.iter().map(|w| normalize(w)).collect();
    let has_lowercase = tokens.iter().any(|w| w.chars().any(char::is_lowercase));
    let mut valences: Vec<f32> = Vec::with_capacity(tokens.len());
    for (i, word) in lower.iter().enumerate() {
        let Some(base) = valence(word) else {
            valences.push(0.0);
            continue;
        };
        // "like" is a preposition more often than a verb; only count it after a pronoun.
        if word == "like" && !i.checked_sub(1).is_some_and(|p| is_subject(&lower[p])) {
            valences.push(0.0);
            continue;
        }
        let direction = base.signum();
        let mut v = base;
        let raw = tokens[i];
        if has_lowercase && raw.chars().count() > 1 && raw.chars().all(|c| !c.is_lowercase()) {
            v += direction * CAPS_BOOST;
        }
        // Boosters and negations among the three preceding words, weaker further away.
        let mut negated = false;
        for back in 1..=3 {
            let Some(p) = i.checked_sub(back) else { break };
            let previous = lower[p].as_str();
            if let Some(&(_, sign)) = BOOSTERS.iter().find(|(b, _)| *b == previous) {
                let distance = 1.0 - 0.05 * (back - 1) as f32;
                v += direction * sign * BOOST * distance;
            }
            if NEGATIONS.contains(&previous) {
                negated = true;
            }
        }
        if negated {
            v *= NEGATION_SCALAR;
        }
        valences.push(v);
    }
    // "but": what comes before it weighs half, what comes after one and a half.
    if let Some(but) = lower.iter().position(|w| w == "but") {
        for (i, v) in valences.iter_mut().enumerate() {
            if i < but {
                *v *= 0.5;
            } else if i > but {
                *v *= 1.5;
            }
        }
    }
    let mut sum: f32 = valences.iter().sum();
    if sum != 0.0 {
        let exclamations = text.matches('!').count().min(4) as f32;
        sum += sum.signum() * exclamations * EXCLAMATION_BOOST;
    }
    let score = sum / (sum * sum + ALPHA).sqrt();
    let label = if score >= THRESHOLD {
        SentimentLabel::Positive
    } else if score <= -THRESHOLD {
        SentimentLabel::Negative
    } else {
        SentimentLabel::Neutral
    };
    Sentiment {
        label,
        score,
        engine: ENGINE,
    }
}

/// Lowercases a word and folds contractions' apostrophes ("Don't" → "dont").
fn normalize(word: &str) -> String {
    word.chars()
        .filter(|c| !matches!(c, '\'' | '’'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn valence(word: &str) -> Option<f32> {
    LEXICON.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
}

fn is_subject(word: &str) -> bool {
    matches!(
        word,
        "i" | "we" | "you" | "they" | "he" | "she" | "really" | "dont" | "didnt" | "would"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str) -> SentimentLabel {
        analyze(text).label
    }

    #[test]
    fn clear_sentences_get_their_label() {
        assert_eq!(
            label("I love this phone, the camera is excellent."),
            SentimentLabel::Positive
        );
        assert_eq!(
            label("The service was terrible and the food was awful."),
            SentimentLabel::Negative
        );
        assert_eq!(
            label("The meeting is scheduled for Tuesday at noon."),
            SentimentLabel::Neutral
        );
        assert_eq!(label(""), SentimentLabel::Neutral);
        assert_eq!(analyze("good").engine, "lexicon");
    }

    #[test]
    fn negation_boosters_caps_but_and_exclamations_apply() {
        let good = analyze("The movie was good.").score;
        assert!(good > 0.0);
        assert!(analyze("The movie was not good.").score < 0.0);
        assert!(analyze("The movie wasn't good.").score < 0.0);
        assert!(analyze("The movie was very good.").score > good);
        assert!(analyze("The movie was slightly good.").score < good);
        assert!(analyze("The movie was GOOD.").score > good);
        assert!(analyze("The movie was good!!").score > good);
        // After "but" counts more.
        assert!(analyze("The plot was good but the acting was terrible.").score < 0.0);
        assert!(analyze("The acting was terrible but the plot was great.").score > 0.0);
        // "like" as a preposition is no sentiment.
        assert_eq!(label("It looks like rain."), SentimentLabel::Neutral);
        assert_eq!(label("I like rain."), SentimentLabel::Positive);
    }

    #[test]
    fn scores_stay_within_bounds() {
        let gushing = "great ".repeat(200);
        let s = analyze(&gushing).score;
        assert!(s > 0.99 && s <= 1.0, "{s}");
        let s = analyze(&"awful ".repeat(200)).score;
        assert!((-1.0..-0.99).contains(&s), "{s}");
    }

    #[test]
    fn lexicon_has_no_duplicates() {
        for (i, (word, _)) in LEXICON.iter().enumerate() {
            assert!(
                LEXICON[i + 1..].iter().all(|(other, _)| other != word),
                "{word} appears twice"
            );
        }
        assert!(LEXICON.len() >= 300, "{}", LEXICON.len());
    }
}
