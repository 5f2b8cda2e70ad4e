//! Attacks of issue 17 (tenancy), each kept as a test written as the attack.
