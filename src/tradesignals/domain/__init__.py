"""Plain values and the rules on them. No I/O, no imports from the rest of tradesignals."""
