//! The numbers of a credibility score (service/engine/scoring.py, `score_credibility`),
//! compiled: each component's value and sample size, weighed into the quality points,
//! the confidence and the score. The explanations stay in Python: scoring.py builds
//! them from its reference when a caller first reads the components.
//!
//! A cold score was ~60 us of Python on an account with two posts, ~26 us of it these
//! numbers (sixteen components, each a call, a closure and a few clamps); here 1.3 us.
//! The arithmetic is the reference's, operation by operation, so that the same inputs
//! give the same bits: sums left to right from zero (Python 3.11's `sum` of floats;
//! scoring.py uses this module only there), `max`/`min` as Python picks between equal or
//! unordered values, and libm's `pow` where Python raises to a power, its exponent kept
//! opaque so that the compiler does not turn `x ** 2` into `x * x`. Counts below 2^53
//! divide as Python divides them; past it `credibility_numbers` declines (`exact`).
//! tests/unit/test_scoring_native.py holds both to the same bits.

use std::hint::black_box;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::{python_max, python_min};

// scoring.py's constants, in its order. `constants()` returns them, and a test compares
// them with the module's, so a tuned threshold cannot leave this copy behind.
const NEUTRAL: f64 = 0.5;
const FIT_BEST_RATIO: f64 = 1.5;
const FIT_SUSPECT_RATIO: f64 = 2.0;
const FIT_IMPLAUSIBLE_RATIO: f64 = 5.0;
const EVIDENCE_FULL_RATIO: f64 = 0.5;
const DEPTH_FULL_SHARE: f64 = 0.2;
const NICHE_FULL_SHARE: f64 = 0.8;
const NICHE_ZERO_SHARE: f64 = 0.3;
const LOYALTY_FULL_SHARE: f64 = 0.6;
const LOYALTY_DIVERSE_AT: f64 = 0.5;
const BURST_TOLERATED_SHARE: f64 = 0.02;
const BURST_ZERO_SHARE: f64 = 0.08;
const RHYTHM_FULL_QUIET_SHARE: f64 = 0.02;
const RHYTHM_ZERO_QUIET_SHARE: f64 = 0.06;
const AUDIENCE_TOLERATED_SHARE: f64 = 0.01;
const AUDIENCE_ZERO_SHARE: f64 = 0.10;
const ROTATION_TOLERATED_SHARE: f64 = 0.18;
const ROTATION_ZERO_SHARE: f64 = 0.38;
const FOLLOWER_ORGANIC_GROWTH: f64 = 0.10;
const FOLLOWER_ZERO_GROWTH: f64 = 0.50;
const FOLLOWER_JUMP_TOLERATED: f64 = 0.15;
const FOLLOWER_JUMP_ZERO: f64 = 0.50;
const VARIATION_FULL_CV: f64 = 0.25;
const OFF_TOPIC_TOLERATED_SHORTFALL: f64 = 0.08;
const OFF_TOPIC_ZERO_SHORTFALL: f64 = 0.30;
const OFF_TOPIC_TOLERATED_DROP: f64 = 0.20;
const OFF_TOPIC_ZERO_DROP: f64 = 0.50;
// tiers.py
const REFERENCE_FOLLOWERS: i64 = 1_000;
const REFERENCE_ENGAGEMENT_RATE: f64 = 0.05;
const ENGAGEMENT_SIZE_ELASTICITY: f64 = 0.27;
const SMALLEST_SIZE_FOR_NORM: i64 = 100;

/// COMPONENTS in scoring.py's order, which is the order of the weighing's sums:
/// (name, is quality, weight, half-confidence sample size).
const COMPONENTS: [(&str, bool, f64, i64); 16] = [
    ("engagement_fit", true, 0.25, 3),
    ("conversation_depth", true, 0.10, 30),
    ("audience_loyalty", true, 0.10, 50),
    ("engagement_concentration", true, 0.20, 50),
    ("sponsored_share", true, 0.15, 2),
    ("niche_focus", true, 0.20, 2),
    ("engagement_evidence", false, 1.0, 2),
    ("timing_authenticity", false, 0.6, 30),
    ("daily_rhythm", false, 0.4, 200),
    ("audience_authenticity", false, 0.7, 30),
    ("audience_rotation", false, 0.7, 30),
    ("follower_consistency", false, 0.7, 2),
    ("follower_jumps", false, 0.7, 2),
    ("post_variation", false, 0.3, 4),
    ("off_topic_engagement", false, 0.7, 2),
    ("off_topic_conversation", false, 0.7, 50),
];

fn clamp(value: f64) -> f64 {
    python_max(0.0, python_min(1.0, value))
}

/// Python's `base ** exponent` for a positive base, through the same libm `pow`.
fn power(base: f64, exponent: f64) -> f64 {
    base.powf(black_box(exponent))
}

/// Python's left-to-right `sum` of floats.
fn sum(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |total, value| total + value)
}

fn ratio(numerator: i64, denominator: i64) -> f64 {
    numerator as f64 / denominator as f64
}

/// tiers.expected_engagement_rate
fn expected_engagement_rate(followers: i64) -> f64 {
    let size = ratio(followers.max(SMALLEST_SIZE_FOR_NORM), REFERENCE_FOLLOWERS);
    REFERENCE_ENGAGEMENT_RATE * power(size, -ENGAGEMENT_SIZE_ELASTICITY)
}

fn ratio_to_normal(per_post: f64, followers: i64) -> f64 {
    let base = followers.max(1);
    per_post / base as f64 / expected_engagement_rate(base)
}

fn engagement_fit_value(ratio: f64) -> f64 {
    if ratio <= 1.0 {
        return NEUTRAL * ratio;
    }
    if ratio <= FIT_BEST_RATIO {
        return NEUTRAL + NEUTRAL * (ratio - 1.0) / (FIT_BEST_RATIO - 1.0);
    }
    if ratio <= FIT_SUSPECT_RATIO {
        return 1.0;
    }
    clamp(1.0 - (ratio - FIT_SUSPECT_RATIO) / (FIT_IMPLAUSIBLE_RATIO - FIT_SUSPECT_RATIO))
}

fn supported_followers(per_post: f64) -> f64 {
    let reach = per_post / (REFERENCE_ENGAGEMENT_RATE * REFERENCE_FOLLOWERS as f64);
    REFERENCE_FOLLOWERS as f64 * power(reach, 1.0 / (1.0 - ENGAGEMENT_SIZE_ELASTICITY))
}

/// What a score reads, from `PostSums`, `ActorSummary`, `Followers` and
/// `AudienceCounts`.
#[derive(Default)]
pub(crate) struct Inputs {
    posts: i64,
    likes: i64,
    comments: i64,
    shares: i64,
    sponsored: i64,
    early: i64,
    posts_with_followers: i64,
    interactions: Vec<i64>,
    known_followers: Vec<i64>,
    known_interactions: Vec<i64>,
    /// Of the tagged posts: whether the main topic is among its topics (filled once the
    /// main topic is known), weighted interactions, interactions, comments and shares.
    tagged: Vec<(bool, f64, i64, i64)>,
    /// The largest count of posts on one topic; None without tagged posts.
    top_topic_posts: Option<i64>,
    has_engaged_topic: bool,
    actor_interactions: i64,
    distinct_actors: f64,
    top_counts: i64,
    rhythm: Vec<i64>,
    followers_now: Option<i64>,
    followers_at_start: Option<i64>,
    judged: i64,
    busy: i64,
    farm_like: i64,
}

/// A component as measured: value and sample size.
type Measured = (f64, i64);

impl Inputs {
    fn interactions_total(&self) -> i64 {
        self.likes + self.comments + self.shares
    }

    fn per_post(&self) -> f64 {
        if self.posts != 0 { ratio(self.interactions_total(), self.posts) } else { 0.0 }
    }

    fn engagement_fit(&self) -> Measured {
        let (Some(now), Some(start)) = (self.followers_now, self.followers_at_start) else {
            return (NEUTRAL, 0);
        };
        if self.posts == 0 {
            return (NEUTRAL, 0);
        }
        let per_post = self.per_post();
        let ratio_now = ratio_to_normal(per_post, now);
        let ratio_start = if start == now { ratio_now } else { ratio_to_normal(per_post, start) };
        let value = python_min(
            engagement_fit_value(python_min(ratio_now, FIT_BEST_RATIO)),
            engagement_fit_value(python_max(ratio_start, FIT_BEST_RATIO)),
        );
        (value, self.posts_with_followers)
    }

    fn conversation_depth(&self) -> Measured {
        let total = self.interactions_total();
        let share = if total != 0 { ratio(self.comments + self.shares, total) } else { 0.0 };
        (clamp(share / DEPTH_FULL_SHARE), total)
    }

    /// audience_loyalty and engagement_concentration
    fn audience(&self) -> (Measured, Measured) {
        let total = self.actor_interactions;
        let top_share = if total != 0 { ratio(self.top_counts, total) } else { 0.0 };
        let returning =
            if total != 0 { clamp(1.0 - self.distinct_actors / total as f64) } else { 0.0 };
        let diversity = 1.0 - top_share;
        let loyalty =
            clamp(returning / LOYALTY_FULL_SHARE) * clamp(diversity / LOYALTY_DIVERSE_AT);
        ((loyalty, total), (diversity, total))
    }

    fn sponsored(&self) -> Measured {
        let share = if self.posts != 0 { ratio(self.sponsored, self.posts) } else { 0.0 };
        (1.0 - share, self.posts)
    }

    fn niche(&self) -> Measured {
        let Some(top) = self.top_topic_posts else {
            return (NEUTRAL, 0);
        };
        let tagged = self.tagged.len() as i64;
        let share = ratio(top, tagged);
        (clamp((share - NICHE_ZERO_SHARE) / (NICHE_FULL_SHARE - NICHE_ZERO_SHARE)), tagged)
    }

    fn evidence(&self) -> Measured {
        let Some(now) = self.followers_now else {
            return (1.0, 0);
        };
        if self.posts == 0 {
            return (1.0, 0);
        }
        let ratio = ratio_to_normal(self.per_post(), now);
        (clamp(ratio / EVIDENCE_FULL_RATIO), self.posts_with_followers)
    }

    fn timing(&self) -> Measured {
        let total = self.interactions_total();
        let share = if total != 0 { ratio(self.early, total) } else { 0.0 };
        let value =
            clamp(1.0 - (share - BURST_TOLERATED_SHARE) / (BURST_ZERO_SHARE - BURST_TOLERATED_SHARE));
        (value, total)
    }

    fn rhythm(&self) -> Measured {
        let total: i64 = self.rhythm.iter().sum();
        if total == 0 {
            return (1.0, 0);
        }
        let quiet = ratio(*self.rhythm.iter().min().unwrap_or(&0), total);
        let value = clamp(
            (RHYTHM_ZERO_QUIET_SHARE - quiet) / (RHYTHM_ZERO_QUIET_SHARE - RHYTHM_FULL_QUIET_SHARE),
        );
        (value, total)
    }

    fn judged_share(&self, of: i64, tolerated: f64, zero: f64) -> Measured {
        let total = self.judged;
        let share = if total != 0 { ratio(of, total) } else { 0.0 };
        (clamp(1.0 - (share - tolerated) / (zero - tolerated)), total)
    }

    fn follower_consistency(&self) -> Measured {
        let (Some(now), Some(start)) = (self.followers_now, self.followers_at_start) else {
            return (1.0, 0);
        };
        if start <= 0 {
            return (1.0, 0);
        }
        let growth = ratio(now, start) - 1.0;
        let unexplained = python_max(
            0.0,
            growth - python_max(0.0, engagement_growth(&self.interactions)) - FOLLOWER_ORGANIC_GROWTH,
        );
        let value =
            clamp(1.0 - unexplained / (FOLLOWER_ZERO_GROWTH - FOLLOWER_ORGANIC_GROWTH));
        (value, self.posts_with_followers)
    }

    fn follower_jumps(&self) -> Measured {
        let counts = &self.known_followers;
        let engagement = &self.known_interactions;
        let Some(now) = self.followers_now else {
            return (1.0, 0);
        };
        if counts.is_empty() {
            return (1.0, 0);
        }
        let total: i64 = engagement.iter().sum();
        let supported = python_max(supported_followers(ratio(total, engagement.len() as i64)), 1.0);
        let mut worst = 0.0;
        let last = counts.len() - 1;
        let mut before: i64 = 0;
        for (index, &count) in counts.iter().enumerate() {
            before += engagement[index];
            let (gain, after) = if index < last {
                (counts[index + 1] - count, ratio(total - before, (last - index) as i64))
            } else {
                before -= engagement[last];
                (now - count, engagement[last] as f64)
            };
            let mean_before = if before != 0 {
                ratio(before, if index < last { index as i64 + 1 } else { last as i64 })
            } else {
                0.0
            };
            let response = if mean_before > 0.0 { after / mean_before - 1.0 } else { 0.0 };
            let unexplained = gain as f64 / supported - python_max(0.0, response);
            if unexplained > worst {
                worst = unexplained;
            }
        }
        let value = clamp(
            1.0 - (worst - FOLLOWER_JUMP_TOLERATED) / (FOLLOWER_JUMP_ZERO - FOLLOWER_JUMP_TOLERATED),
        );
        (value, counts.len() as i64)
    }

    fn post_variation(&self) -> Measured {
        let counts = &self.interactions;
        if counts.len() < 3 || counts.iter().all(|&count| count == 0) {
            return (1.0, 0);
        }
        let length = counts.len() as i64;
        let mean = ratio(counts.iter().sum(), length);
        let squares = counts.iter().fold(0.0, |total, &count| {
            total + power((count as f64 - mean).abs(), 2.0)
        });
        let spread = (squares / (length - 1) as f64).sqrt();
        (clamp(spread / mean / VARIATION_FULL_CV), length)
    }

    /// off_topic_engagement and off_topic_conversation
    fn off_topic(&self) -> (Measured, Measured) {
        if !self.has_engaged_topic {
            return ((1.0, 0), (1.0, 0));
        }
        let mut niche_weighted = Vec::new();
        let mut off_weighted = Vec::new();
        let (mut niche_total, mut niche_deep, mut off_total, mut off_deep) = (0, 0, 0, 0);
        for &(on_main, weighted, total, deep) in &self.tagged {
            if on_main {
                niche_weighted.push(weighted);
                niche_total += total;
                niche_deep += deep;
            } else {
                off_weighted.push(weighted);
                off_total += total;
                off_deep += deep;
            }
        }
        let deep_share = |deep: i64, total: i64| if total != 0 { ratio(deep, total) } else { 0.0 };
        (
            off_topic_engagement(&niche_weighted, &off_weighted),
            off_topic_conversation(
                deep_share(niche_deep, niche_total),
                deep_share(off_deep, off_total),
                off_total,
            ),
        )
    }

    /// The components in COMPONENTS' order.
    fn measured(&self) -> [Measured; 16] {
        let (loyalty, concentration) = self.audience();
        let (off_engagement, off_conversation) = self.off_topic();
        [
            self.engagement_fit(),
            self.conversation_depth(),
            loyalty,
            concentration,
            self.sponsored(),
            self.niche(),
            self.evidence(),
            self.timing(),
            self.rhythm(),
            self.judged_share(self.busy, AUDIENCE_TOLERATED_SHARE, AUDIENCE_ZERO_SHARE),
            self.judged_share(self.farm_like, ROTATION_TOLERATED_SHARE, ROTATION_ZERO_SHARE),
            self.follower_consistency(),
            self.follower_jumps(),
            self.post_variation(),
            off_engagement,
            off_conversation,
        ]
    }

    /// Whether every count is below 2^53, where an integer division here gives the
    /// double Python's gives (past it Python divides the exact integers).
    fn exact(&self) -> bool {
        const EXACT: i64 = 1 << 53;
        let small = |value: i64| (-EXACT..=EXACT).contains(&value);
        [self.followers_now, self.followers_at_start].iter().flatten().all(|&value| small(value))
            && self.known_followers.iter().all(|&value| small(value))
            && [self.posts, self.likes, self.comments, self.shares, self.actor_interactions,
                self.top_counts, self.judged, self.busy, self.farm_like]
                .iter()
                .all(|&value| small(value))
            && small(self.rhythm.iter().sum())
    }

    /// The quality points, the backed weight and the score, unrounded.
    pub(crate) fn weigh(&self) -> (f64, f64, f64) {
        let mut quality = 0.0;
        let mut backed = 0.0;
        let mut multiplier = 1.0;
        for ((_, is_quality, weight, half_at), (value, samples)) in
            COMPONENTS.iter().zip(self.measured())
        {
            let confidence = if samples > 0 { ratio(samples, samples + half_at) } else { 0.0 };
            if *is_quality {
                let effective = confidence * value + (1.0 - confidence) * NEUTRAL;
                quality += 100.0 * weight * effective;
                backed += weight * confidence;
            } else {
                let effective = confidence * value + (1.0 - confidence);
                multiplier *= 1.0 - weight * (1.0 - effective);
            }
        }
        (quality, backed, quality * multiplier)
    }
}

fn engagement_growth(interactions: &[i64]) -> f64 {
    if interactions.len() < 2 {
        return 0.0;
    }
    let half = interactions.len() / 2;
    let older = ratio(interactions[..half].iter().sum(), half as i64);
    let newer = ratio(interactions[interactions.len() - half..].iter().sum(), half as i64);
    if older > 0.0 { newer / older - 1.0 } else { 0.0 }
}

fn off_topic_engagement(niche: &[f64], off: &[f64]) -> Measured {
    let niche_mean = sum(niche) / niche.len() as f64;
    if off.is_empty() || niche_mean <= 0.0 {
        return (1.0, 0);
    }
    let off_mean = sum(off) / off.len() as f64;
    let (off_posts, niche_posts) = (off.len() as i64, niche.len() as i64);
    let shortfall = python_max(0.0, niche_mean - off_mean) * off_posts as f64
        / (niche_mean * (niche_posts + off_posts) as f64);
    let value = clamp(
        1.0 - (shortfall - OFF_TOPIC_TOLERATED_SHORTFALL)
            / (OFF_TOPIC_ZERO_SHORTFALL - OFF_TOPIC_TOLERATED_SHORTFALL),
    );
    (value, off_posts)
}

fn off_topic_conversation(niche_deep: f64, off_deep: f64, off_total: i64) -> Measured {
    if off_total == 0 || niche_deep <= 0.0 {
        return (1.0, 0);
    }
    let drop = python_max(0.0, 1.0 - off_deep / niche_deep);
    let value = clamp(
        1.0 - (drop - OFF_TOPIC_TOLERATED_DROP) / (OFF_TOPIC_ZERO_DROP - OFF_TOPIC_TOLERATED_DROP),
    );
    (value, off_total)
}

fn ints(list: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    list.cast::<PyList>()?.iter().map(|item| item.extract()).collect()
}

/// The topic the audience engages with most (`_top_topic`: ties go to the smaller name).
fn main_topic<'py>(by_topic: &Bound<'py, PyDict>) -> PyResult<Option<Bound<'py, PyString>>> {
    let mut best: Option<(Bound<'py, PyString>, f64)> = None;
    for (topic, weighted) in by_topic.iter() {
        let topic = topic.cast_into::<PyString>()?;
        let weighted: f64 = weighted.extract()?;
        let better = match &best {
            None => true,
            Some((best_topic, best_weighted)) => {
                -weighted < -best_weighted
                    || (-weighted == -best_weighted && topic.lt(best_topic)?)
            }
        };
        if better {
            best = Some((topic, weighted));
        }
    }
    Ok(best.map(|(topic, _)| topic))
}

impl Inputs {
    fn read(
        sums: &Bound<'_, PyAny>,
        actors: &Bound<'_, PyAny>,
        followers: &Bound<'_, PyAny>,
        audience: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let py = sums.py();
        let mut inputs = Inputs {
            posts: sums.getattr(intern!(py, "posts"))?.extract()?,
            likes: sums.getattr(intern!(py, "likes"))?.extract()?,
            comments: sums.getattr(intern!(py, "comments"))?.extract()?,
            shares: sums.getattr(intern!(py, "shares"))?.extract()?,
            sponsored: sums.getattr(intern!(py, "sponsored"))?.extract()?,
            early: sums.getattr(intern!(py, "early"))?.extract()?,
            posts_with_followers: sums.getattr(intern!(py, "rates"))?.len()? as i64,
            interactions: ints(&sums.getattr(intern!(py, "interactions"))?)?,
            known_followers: ints(&sums.getattr(intern!(py, "known_followers"))?)?,
            known_interactions: ints(&sums.getattr(intern!(py, "known_interactions"))?)?,
            actor_interactions: actors.getattr(intern!(py, "interactions"))?.extract()?,
            distinct_actors: actors.getattr(intern!(py, "distinct_actors"))?.extract()?,
            followers_now: followers.getattr(intern!(py, "now"))?.extract()?,
            followers_at_start: followers.getattr(intern!(py, "at_window_start"))?.extract()?,
            judged: audience.getattr(intern!(py, "interactions"))?.extract()?,
            busy: audience.getattr(intern!(py, "busy"))?.extract()?,
            farm_like: audience.getattr(intern!(py, "farm_like"))?.extract()?,
            ..Inputs::default()
        };
        let top_counts = actors.getattr(intern!(py, "top_counts"))?;
        for count in top_counts.cast::<PyTuple>()?.iter() {
            inputs.top_counts += count.extract::<i64>()?;
        }
        let rhythm = actors.getattr(intern!(py, "rhythm"))?;
        inputs.rhythm =
            rhythm.cast::<PyTuple>()?.iter().map(|count| count.extract()).collect::<PyResult<_>>()?;
        let posts_by_topic = sums.getattr(intern!(py, "posts_by_topic"))?;
        for count in posts_by_topic.cast::<PyDict>()?.values() {
            let count: i64 = count.extract()?;
            inputs.top_topic_posts = Some(inputs.top_topic_posts.map_or(count, |top| top.max(count)));
        }
        let by_topic = sums.getattr(intern!(py, "engagement_by_topic"))?;
        let main = main_topic(by_topic.cast::<PyDict>()?)?;
        inputs.has_engaged_topic = main.is_some();
        let tagged = sums.getattr(intern!(py, "tagged"))?;
        for post in tagged.cast::<PyList>()?.iter() {
            let post = post.cast_into::<PyTuple>()?;
            let on_main = match &main {
                Some(main) => post.get_item(0)?.cast::<PyTuple>()?.contains(main)?,
                None => false,
            };
            inputs.tagged.push((
                on_main,
                post.get_item(1)?.extract()?,
                post.get_item(2)?.extract()?,
                post.get_item(3)?.extract()?,
            ));
        }
        Ok(inputs)
    }
}

/// The quality points, the backed weight and the score of `scoring.score_credibility`,
/// unrounded, from a score's `PostSums`, `ActorSummary`, `Followers` and
/// `AudienceCounts`; None if a count is too large to divide as Python does (the
/// caller then asks the reference).
#[pyfunction]
#[pyo3(signature = (sums, actors, followers, audience, /))]
pub(crate) fn credibility_numbers(
    sums: &Bound<'_, PyAny>,
    actors: &Bound<'_, PyAny>,
    followers: &Bound<'_, PyAny>,
    audience: &Bound<'_, PyAny>,
) -> PyResult<Option<(f64, f64, f64)>> {
    let inputs = Inputs::read(sums, actors, followers, audience)?;
    Ok(if inputs.exact() { Some(inputs.weigh()) } else { None })
}

/// The constants this module copies from scoring.py and tiers.py, by their names there,
/// and the components as (name, is quality, weight, half-confidence sample size).
#[pyfunction]
pub(crate) fn scoring_constants(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let constants = PyDict::new(py);
    for (name, value) in [
        ("NEUTRAL", NEUTRAL),
        ("FIT_BEST_RATIO", FIT_BEST_RATIO),
        ("FIT_SUSPECT_RATIO", FIT_SUSPECT_RATIO),
        ("FIT_IMPLAUSIBLE_RATIO", FIT_IMPLAUSIBLE_RATIO),
        ("EVIDENCE_FULL_RATIO", EVIDENCE_FULL_RATIO),
        ("DEPTH_FULL_SHARE", DEPTH_FULL_SHARE),
        ("NICHE_FULL_SHARE", NICHE_FULL_SHARE),
        ("NICHE_ZERO_SHARE", NICHE_ZERO_SHARE),
        ("LOYALTY_FULL_SHARE", LOYALTY_FULL_SHARE),
        ("LOYALTY_DIVERSE_AT", LOYALTY_DIVERSE_AT),
        ("BURST_TOLERATED_SHARE", BURST_TOLERATED_SHARE),
        ("BURST_ZERO_SHARE", BURST_ZERO_SHARE),
        ("RHYTHM_FULL_QUIET_SHARE", RHYTHM_FULL_QUIET_SHARE),
        ("RHYTHM_ZERO_QUIET_SHARE", RHYTHM_ZERO_QUIET_SHARE),
        ("AUDIENCE_TOLERATED_SHARE", AUDIENCE_TOLERATED_SHARE),
        ("AUDIENCE_ZERO_SHARE", AUDIENCE_ZERO_SHARE),
        ("ROTATION_TOLERATED_SHARE", ROTATION_TOLERATED_SHARE),
        ("ROTATION_ZERO_SHARE", ROTATION_ZERO_SHARE),
        ("FOLLOWER_ORGANIC_GROWTH", FOLLOWER_ORGANIC_GROWTH),
        ("FOLLOWER_ZERO_GROWTH", FOLLOWER_ZERO_GROWTH),
        ("FOLLOWER_JUMP_TOLERATED", FOLLOWER_JUMP_TOLERATED),
        ("FOLLOWER_JUMP_ZERO", FOLLOWER_JUMP_ZERO),
        ("VARIATION_FULL_CV", VARIATION_FULL_CV),
        ("OFF_TOPIC_TOLERATED_SHORTFALL", OFF_TOPIC_TOLERATED_SHORTFALL),
        ("OFF_TOPIC_ZERO_SHORTFALL", OFF_TOPIC_ZERO_SHORTFALL),
        ("OFF_TOPIC_TOLERATED_DROP", OFF_TOPIC_TOLERATED_DROP),
        ("OFF_TOPIC_ZERO_DROP", OFF_TOPIC_ZERO_DROP),
        ("REFERENCE_ENGAGEMENT_RATE", REFERENCE_ENGAGEMENT_RATE),
        ("ENGAGEMENT_SIZE_ELASTICITY", ENGAGEMENT_SIZE_ELASTICITY),
    ] {
        constants.set_item(name, value)?;
    }
    constants.set_item("REFERENCE_FOLLOWERS", REFERENCE_FOLLOWERS)?;
    constants.set_item("SMALLEST_SIZE_FOR_NORM", SMALLEST_SIZE_FOR_NORM)?;
    constants.set_item("COMPONENTS", COMPONENTS.to_vec())?;
    Ok(constants)
}
