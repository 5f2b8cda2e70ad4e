//! Attacks of issue 17 (http), each kept as a test written as the attack.
