// Titles files, item maps and the ItemCatalog.
#include <gtest/gtest.h>

#include "recsys/data/dataset.h"
#include "recsys/data/synthetic.h"
#include "tensor/rng.h"
#include "tests/recsys/data/data_files.h"

namespace prunerec::recsys {
namespace {

using testing::DataFiles;
using testing::error_message;
using testing::Ids;

TEST(ItemCatalog, AddFindAndTitles) {
  ItemCatalog items;
  EXPECT_EQ(items.add("B00X"), 0);
  EXPECT_EQ(items.add("7"), 1);
  EXPECT_EQ(items.add("B00X"), 0);
  EXPECT_EQ(items.size(), 2);
  EXPECT_EQ(items.find("7"), 1);
  EXPECT_EQ(items.find("8"), -1);
  EXPECT_FALSE(items.has_titles());
  EXPECT_EQ(items.title(1), "");
  items.set_title(1, "Seven");
  EXPECT_EQ(items.titles, (Ids{"", "Seven"}));
  EXPECT_EQ(items.add("new"), 2);  // titles stay one per item
  EXPECT_EQ(items.titles.size(), 3u);
  EXPECT_EQ(items.num_titled(), 1);

  items.raw_ids[2] = "renamed";
  items.reindex();
  EXPECT_EQ(items.find("renamed"), 2);
  EXPECT_EQ(items.find("new"), -1);
  items.raw_ids[2] = "7";
  EXPECT_THROW(items.reindex(), IoError);  // two items with one raw id
}

TEST(Titles, TsvWithHeaderAndItemMap) {
  DataFiles files;
  std::string data_path = files.write("s3rec/Beauty.txt", "1 1 2\n2 2 3\n");
  std::string map = files.write("s3rec_to_transrec_item.tsv",
                                "s3rec_item_id\ttransrec_item_id\n1\t10\n2\t0\n3\t11\n");
  std::string titles = files.write("transrec/title_maps.tsv",
                                   "item_id\ttitle\n0\tNail Polish\n10\tLip Gloss\n11\tMascara, Black\n");
  ReadOptions opts;
  opts.titles_path = titles;
  opts.item_map_path = map;
  SequenceDataset data = read_dataset(data_path, opts);
  EXPECT_EQ(data.items.raw_ids, (Ids{"1", "2", "3"}));  // raw ids stay the data's
  EXPECT_EQ(data.items.titles, (Ids{"Lip Gloss", "Nail Polish", "Mascara, Black"}));
  EXPECT_EQ(data.files_read, (Ids{data_path, map, titles}));
}

TEST(Titles, TsvWithoutHeaderAndPartialCoverage) {
  DataFiles files;
  std::string data_path = files.write("seq.txt", "1 0 1\n2 2\n");
  std::string titles = files.write("t.tsv", "0\tFirst\n2\tThird\n99\tNot in the data\n");
  ReadOptions opts;
  opts.titles_path = titles;
  SequenceDataset data = read_dataset(data_path, opts);
  EXPECT_EQ(data.items.titles, (Ids{"First", "", "Third"}));
}

TEST(Titles, SpaceSeparatedMapToRecboleItemFile) {
  DataFiles files;  // the ml-1m layout: SAS ids -> MovieLens ids -> titles
  std::string data_path = files.write("train/input.txt", "1 2\n2 1\n1 2\n");
  std::string map = files.write("sas_to_original_items.txt", "1 1198\n2 1\n");
  std::string titles = files.write("ml-1m.item",
                                   "item_id:token\tmovie_title:token_seq\trelease_year:token\n"
                                   "1\tToy Story\t1995\n1198\tRaiders of the Lost Ark\t1981\n");
  ReadOptions opts;
  opts.format = "item-seq";
  opts.titles_path = titles;
  opts.item_map_path = map;
  SequenceDataset data = read_dataset(data_path, opts);
  EXPECT_EQ(data.items.title(data.items.find("1")), "Raiders of the Lost Ark");
  EXPECT_EQ(data.items.title(data.items.find("2")), "Toy Story");
}

TEST(Titles, ConfigMistakesAreConfigErrors) {
  DataFiles files;
  std::string data_path = files.write("seq.txt", "1 5 6\n");
  std::string titles = files.write("t.tsv", "0\tZero\n");
  ReadOptions opts;
  opts.titles_path = titles;
  // A titles file that names none of the items is almost certainly the wrong file.
  std::string message = error_message<ConfigError>([&] { read_dataset(data_path, opts); });
  EXPECT_NE(message.find(titles), std::string::npos) << message;

  ReadOptions map_only;
  map_only.item_map_path = files.write("m.tsv", "5\t0\n");
  message = error_message<ConfigError>([&] { read_dataset(data_path, map_only); });
  EXPECT_NE(message.find("titles_path"), std::string::npos) << message;

  ReadOptions missing;
  missing.titles_path = files.path("absent.tsv");
  message = error_message<IoError>([&] { read_dataset(data_path, missing); });
  EXPECT_NE(message.find("absent.tsv"), std::string::npos) << message;
}

TEST(Titles, MalformedFilesNameTheirLine) {
  DataFiles files;
  std::string data_path = files.write("seq.txt", "1 5 6\n");
  ReadOptions opts;
  opts.titles_path = files.write("t.tsv", "5\tFive\n6 no tab here\n");
  std::string message = error_message<IoError>([&] { read_dataset(data_path, opts); });
  EXPECT_NE(message.find(opts.titles_path + ":2:"), std::string::npos) << message;

  ReadOptions twice;
  twice.titles_path = files.write("t2.tsv", "0\tZero\n");
  twice.item_map_path = files.write("m.tsv", "5\t0\n6\t0\n5\t1\n");
  message = error_message<IoError>([&] { read_dataset(data_path, twice); });
  EXPECT_NE(message.find(twice.item_map_path + ":3:"), std::string::npos) << message;
  EXPECT_NE(message.find("already mapped on line 1"), std::string::npos) << message;
}

// Note [Titles that fit]: titles that follow the items (a "brand" per cluster, and
// sequences stay within a cluster) fit; the same titles on permuted ids (what a data set
// re-indexed 1..N meets with another set's titles) do not, although every id matches.
TEST(TitleFit, RightTitlesFitAndTitlesOnPermutedIdsDoNot) {
  SequenceDataset data = make_synthetic({.users = 1500, .items = 1000, .clusters = 100, .mean_length = 10, .seed = 2});
  auto title_of = [](std::int32_t item) {  // "Brandx17 thing 417": one brand word per cluster
    return "Brandx" + std::to_string(item % 100) + " thing " + std::to_string(item);
  };
  for (std::int32_t i = 0; i < data.items.size(); ++i) data.items.set_title(i, title_of(i));
  const TitleFit right = title_fit(data);
  EXPECT_TRUE(right.conclusive);
  EXPECT_GT(right.z, 10) << right.consecutive_share << " vs " << right.random_share;
  EXPECT_TRUE(right.fits());
  std::vector<std::int32_t> perm(1000);
  for (std::int32_t i = 0; i < 1000; ++i) perm[i] = i;
  Rng(5).shuffle(perm);
  for (std::int32_t i = 0; i < data.items.size(); ++i) data.items.set_title(i, title_of(perm[i]));
  const TitleFit permuted = title_fit(data);
  EXPECT_TRUE(permuted.conclusive);
  EXPECT_LT(permuted.z, 4) << permuted.consecutive_share << " vs " << permuted.random_share;
  EXPECT_FALSE(permuted.fits());
  // Titles with only common words (the synthetic set's own "Cluster 3 item 17") cannot be
  // judged: no warning either way.
  SequenceDataset plain = make_synthetic({.users = 300, .items = 100, .clusters = 5, .mean_length = 8, .seed = 2});
  EXPECT_FALSE(title_fit(plain).conclusive);
  EXPECT_TRUE(title_fit(plain).fits());
}

}  // namespace
}  // namespace prunerec::recsys
