mod check;

fn main() {}
