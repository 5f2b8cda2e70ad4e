//! Attacks of issue 17 (widgets), each kept as a test written as the attack.
