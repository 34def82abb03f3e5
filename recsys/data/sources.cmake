# Data: readers for the common sequential-recommendation formats, id maps, titles, k-core
# filter, splits and statistics. Paths are relative to recsys/.
set(PRUNEREC_RECSYS_DATA_SOURCES
    data/dataset.cc
    data/detect.cc
    data/filter.cc
    data/read_d3.cc
    data/read_events.cc
    data/read_json.cc
    data/read_lines.cc
    data/split.cc
    data/stats.cc
    data/text.cc
    data/titles.cc)
