//! Attacks of issue 17 (secrets), each kept as a test written as the attack.
