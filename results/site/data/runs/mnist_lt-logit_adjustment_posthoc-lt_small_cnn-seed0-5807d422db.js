window.LT_BENCH_FIGURES = {};
