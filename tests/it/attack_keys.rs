//! Attacks of issue 17 (keys), each kept as a test written as the attack.
