//! Real-system tests live in tests/tests/.
