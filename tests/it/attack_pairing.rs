//! Attacks of issue 17 (pairing), each kept as a test written as the attack.
