# Tests of recsys/data: every reader and format rule on fixtures the tests write
# themselves (the real data sets may not be committed), k-core, splits and stats.
# Paths are relative to tests/recsys.
set(PRUNEREC_RECSYS_DATA_TESTS
    data/detect_test.cc
    data/filter_test.cc
    data/read_d3_test.cc
    data/read_events_test.cc
    data/read_json_test.cc
    data/read_lines_test.cc
    data/split_test.cc
    data/stats_test.cc
    data/text_test.cc
    data/titles_test.cc)
