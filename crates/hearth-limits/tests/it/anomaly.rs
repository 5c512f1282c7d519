//! Anomaly detection as an operator sees it: a spike is logged and counted once, and a
//! blocking detector refuses the key until the block ends.

use std::time::{Duration, Instant};

use hearth_limits::{AnomalyDetector, AnomalySettings, Verdict};

use crate::support::{capture_logs, metrics};

#[test]
fn a_spike_is_logged_and_counted_once_per_interval_and_blocks_when_configured() {
    let recorded = metrics();
    let (logs, _guard) = capture_logs();
    let detector = AnomalyDetector::new(AnomalySettings {
        block: true,
        block_secs: 120,
        ..AnomalySettings::default()
    });
    let t0 = Instant::now();
    let key = "user:spiky";
    // Ten minutes at one request per second: the baseline.
    for s in 0..600 {
        assert_eq!(
            detector.observe(key, t0 + Duration::from_secs(s)),
            Verdict::Normal
        );
    }
    let before = recorded.total("hearth_anomalies_total{}");
    // Then 100 requests per second.
    let spike = t0 + Duration::from_secs(600);
    let verdicts: Vec<Verdict> = (0..1000)
        .map(|i| detector.observe(key, spike + Duration::from_millis(i * 10)))
        .collect();
    let first = verdicts
        .iter()
        .position(Verdict::is_blocked)
        .expect("blocked");
    assert!(
        first < 100,
        "caught within the first second of the spike (request {first})"
    );
    let Verdict::Blocked { until } = verdicts[first] else {
        unreachable!()
    };
    assert!(verdicts[first..].iter().all(Verdict::is_blocked));
    assert_eq!(
        recorded.total("hearth_anomalies_total{}") - before,
        1.0,
        "counted once"
    );
    assert_eq!(
        logs.text().matches("request-rate anomaly").count(),
        1,
        "{}",
        logs.text()
    );
    assert!(logs.text().contains("user:spiky"));
    // The block ends on time.
    assert!(
        detector
            .observe(key, until - Duration::from_millis(1))
            .is_blocked()
    );
    assert_eq!(detector.observe(key, until), Verdict::Normal);
}
