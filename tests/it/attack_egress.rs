//! Attacks of issue 17 (egress), each kept as a test written as the attack.
