//! What a report says about a student's events: the units in time order, counts, time span
//! and pauses.
//!
//! Events with a time come first, oldest first (ties keep the order they were sent in); events
//! without a time follow in the order they were sent. Consecutive events in the same unit form
//! one visit. The analysis borrows the request's strings instead of copying them.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::ValidRequest;

/// How the analysis summarises.
#[derive(Debug, Clone)]
pub struct AnalysisOptions {
    /// A pause at least this long is always listed.
    pub gap_threshold: TimeDelta,
    /// The longest pauses listed even when under the threshold.
    pub top_gaps: usize,
    /// Most pauses listed in all.
    pub max_gaps: usize,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            gap_threshold: TimeDelta::days(1),
            top_gaps: 5,
            max_gaps: 50,
        }
    }
}

/// Consecutive events in one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit<'a> {
    /// The unit.
    pub unit: &'a str,
    /// Events in the visit.
    pub events: usize,
    /// Time of the visit's first timed event.
    pub first: Option<DateTime<Utc>>,
    /// Time of the visit's last timed event.
    pub last: Option<DateTime<Utc>>,
}

/// How much happened in one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCount<'a> {
    /// The unit.
    pub unit: &'a str,
    /// Events in the unit.
    pub events: usize,
    /// Separate visits to the unit.
    pub visits: usize,
}

/// How many events had one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeCount<'a> {
    /// The type; `None` for events sent without one.
    pub event_type: Option<&'a str>,
    /// Events of the type.
    pub events: usize,
}

/// A pause between two consecutive timed events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap<'a> {
    /// When the pause started (the earlier event).
    pub from: DateTime<Utc>,
    /// When it ended (the later event).
    pub to: DateTime<Utc>,
    /// The unit of the earlier event.
    pub from_unit: &'a str,
    /// The unit of the later event.
    pub to_unit: &'a str,
}

impl Gap<'_> {
    /// Returns how long the pause lasted.
    pub fn duration(&self) -> TimeDelta {
        self.to - self.from
    }
}

/// The analysis of one student's events.
#[derive(Debug, Clone)]
pub struct Analysis<'a> {
    /// The student.
    pub student_id: &'a str,
    /// The namespace, if any.
    pub namespace: Option<&'a str>,
    /// All events.
    pub total_events: usize,
    /// Events sent with a time.
    pub timed_events: usize,
    /// The earliest event time.
    pub first: Option<DateTime<Utc>>,
    /// The latest event time.
    pub last: Option<DateTime<Utc>>,
    /// The visits, in time order.
    pub visits: Vec<Visit<'a>>,
    /// Counts per unit, most events first (ties by name).
    pub units: Vec<UnitCount<'a>>,
    /// Counts per type, most events first (ties by name).
    pub types: Vec<TypeCount<'a>>,
    /// The listed pauses, longest first.
    pub gaps: Vec<Gap<'a>>,
    /// The pauses at least [`AnalysisOptions::gap_threshold`] long, listed or not.
    pub gaps_over_threshold: usize,
    /// The threshold used.
    pub gap_threshold: TimeDelta,
}

impl<'a> Analysis<'a> {
    /// Analyses a validated request.
    pub fn new(request: &'a ValidRequest, options: &AnalysisOptions) -> Self {
        let events = &request.events;
        // Timed events first, by time; a stable sort keeps ties and untimed events in sent order.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| {
            let time = events[i].created_time;
            (time.is_none(), time)
        });

        let mut visits: Vec<Visit<'a>> = Vec::new();
        let mut units: HashMap<&'a str, UnitCount<'a>> = HashMap::new();
        let mut types: HashMap<Option<&'a str>, usize> = HashMap::new();
        // (pause, index in `order` of the later event) for every pair of consecutive timed events
        let mut pauses: Vec<(TimeDelta, usize)> = Vec::new();
        let mut timed_events = 0;
        let mut previous_time = None;

        for (position, &i) in order.iter().enumerate() {
            let event = &events[i];
            let unit = event.unit.as_str();
            let time = event.created_time;
            if let Some(time) = time {
                timed_events += 1;
                if let Some(previous) = previous_time {
                    pauses.push((time - previous, position));
                }
                previous_time = Some(time);
            }

            let new_visit = match visits.last_mut() {
                Some(visit) if visit.unit == unit => {
                    visit.events += 1;
                    if time.is_some() {
                        visit.first = visit.first.or(time);
                        visit.last = time;
                    }
                    false
                }
                _ => {
                    visits.push(Visit {
                        unit,
                        events: 1,
                        first: time,
                        last: time,
                    });
                    true
                }
            };
            let count = units.entry(unit).or_insert(UnitCount {
                unit,
                events: 0,
                visits: 0,
            });
            count.events += 1;
            count.visits += usize::from(new_visit);
            *types.entry(event.event_type.as_deref()).or_default() += 1;
        }

        let timed = &order[..timed_events];
        let first = timed.first().and_then(|&i| events[i].created_time);
        let last = timed.last().and_then(|&i| events[i].created_time);

        let gaps_over_threshold = pauses
            .iter()
            .filter(|(pause, _)| *pause >= options.gap_threshold)
            .count();
        let listed = gaps_over_threshold
            .max(options.top_gaps)
            .min(options.max_gaps)
            .min(pauses.len());
        // Longest first; among equal pauses, the earlier one first.
        pauses.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let gaps = pauses[..listed]
            .iter()
            .filter_map(|&(_, position)| {
                let later = &events[order[position]];
                let earlier = &events[order[position - 1]];
                Some(Gap {
                    from: earlier.created_time?,
                    to: later.created_time?,
                    from_unit: &earlier.unit,
                    to_unit: &later.unit,
                })
            })
            .collect();

        let mut units: Vec<UnitCount<'a>> = units.into_values().collect();
        units.sort_by(|a, b| b.events.cmp(&a.events).then(a.unit.cmp(b.unit)));
        let mut types: Vec<TypeCount<'a>> = types
            .into_iter()
            .map(|(event_type, events)| TypeCount { event_type, events })
            .collect();
        types.sort_by(|a, b| {
            b.events
                .cmp(&a.events)
                .then(a.event_type.cmp(&b.event_type))
        });

        Self {
            student_id: &request.student_id,
            namespace: request.namespace.as_deref(),
            total_events: events.len(),
            timed_events,
            first,
            last,
            visits,
            units,
            types,
            gaps,
            gaps_over_threshold,
            gap_threshold: options.gap_threshold,
        }
    }

    /// Returns how long the timed events span.
    pub fn span(&self) -> Option<TimeDelta> {
        Some(self.last? - self.first?)
    }
}
