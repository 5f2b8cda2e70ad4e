//! Attacks of issue 17 (metrics), each kept as a test written as the attack.
