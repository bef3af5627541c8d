"""One walk over one window: paginators (what to ask next, no HTTP), the page loop with its de-duplication and
loop/stall detection, and the parallel fan-out of sub-windows with their reassembly in walk order."""
