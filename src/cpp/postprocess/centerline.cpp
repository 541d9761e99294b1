#include "centerline.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <queue>
#include <tuple>
#include <utility>

#include "arguments.hpp"

namespace cathtrack::postprocess {

namespace {

constexpr float kDiagonal = 1.41421356f;
constexpr int kSmoothingRadius = 2;
constexpr int kDy[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
constexpr int kDx[8] = {-1, 0, 1, -1, 1, -1, 0, 1};

// Thinning leaves spurs of a few pixels on ragged or thick masks, and a short fork where a stroke
// is cut by the image border; a branch with a free end shorter than this is taken for one.
constexpr float kMaxSpurLength = 6.0f;
// Two strokes of width w crossing at angle a thin into two junctions about w / sin(a / 2) apart:
// 17 px for w = 5 px at 30 degrees, up to 28 px where the curves bend towards each other. Junctions
// joined by a branch this short are one crossing.
constexpr float kMaxBridgeLength = 28.0f;
// An arm's direction runs from its pixel kDirectionSkip steps out of the junction (past the bend
// that thinning puts next to a junction) to the one kDirectionReach steps out, which averages over
// the 8-connected staircase.
constexpr int kDirectionSkip = 2;
constexpr int kDirectionReach = 10;
// Pixels of each arm left out next to a crossing (see choose_straight_joins), and the longest
// straight join: a bridge plus the trimmed arm ends and the junction pixels at both ends of it.
constexpr std::int32_t kCrossingTrim = 4;
constexpr float kMaxStraightJoin = kMaxBridgeLength + 2.0f * (kCrossingTrim + 2);
// Two arms continue each other if the path through the junction bends by at most 60 degrees.
// Crossing catheters meet at >= 30 degrees and go straight through (~0 degrees); a catheter that
// touches the side of another meets it at a wide angle. A curve of radius R bends by about
// 12 px / R between two arm directions (each is centred ~6 px out of the junction), so rings down
// to ~12 px radius keep their path.
constexpr float kMinThroughCosine = 0.5f;
// More arms than this at one junction cluster is noise, not crossing devices; none is paired, which
// also bounds the pairing work.
constexpr int kMaxPairedArms = 12;

using Pixels = std::vector<std::int32_t>;

struct Branch {
  std::int32_t begin = 0;              // first pixel in branch_pixels_; pixels run end 0 -> end 1
  std::int32_t size = 0;               // pixels, >= 1
  std::int32_t cluster[2] = {-1, -1};  // junction cluster at each end; -1: a free end
  std::int32_t attach[2] = {-1, -1};   // the cluster pixel next to each end
  float length = 0.0f;                 // arc length, including the steps onto the clusters
  bool closed = false;                 // a loop without junctions
  bool removed = false;                // a pruned spur, or a bridge absorbed into a cluster
};

// Arm = one end of a branch at a junction cluster: 2 * branch + end.
int branch_of(int arm) { return arm / 2; }
int end_of(int arm) { return arm % 2; }

float step_length(std::int32_t p, std::int32_t q, int width) {
  return (p / width != q / width && p % width != q % width) ? kDiagonal : 1.0f;
}

// Shortest paths (steps of 1 and sqrt 2) inside one junction cluster. The per-pixel arrays are not
// initialised: a run resets them over the cluster's pixels, the only ones it reads.
class ClusterSearch {
 public:
  ClusterSearch(int height, int width)
      : height_(height),
        width_(width),
        distance_(new float[static_cast<std::size_t>(height) * width]),
        previous_(new std::int32_t[static_cast<std::size_t>(height) * width]) {}

  // From source over the pixels `members` (those for which `inside` holds), stopping once `target`
  // is settled (-1: never). Returns the farthest pixel (ties: the smallest index, so the result
  // does not depend on heap order).
  template <typename Inside>
  std::int32_t run(std::int32_t source, std::int32_t target, const std::int32_t* members,
                   std::int32_t count, Inside inside) {
    for (std::int32_t i = 0; i < count; ++i) {
      distance_[members[i]] = kUnreached;
      previous_[members[i]] = -1;
    }
    using Item = std::pair<float, std::int32_t>;
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
    distance_[source] = 0.0f;
    queue.push({0.0f, source});
    while (!queue.empty()) {
      const auto [d, p] = queue.top();
      queue.pop();
      if (d > distance_[p]) continue;
      if (p == target) break;
      const int row = p / width_, col = p % width_;
      for (int k = 0; k < 8; ++k) {
        const int r = row + kDy[k], c = col + kDx[k];
        if (r < 0 || r >= height_ || c < 0 || c >= width_) continue;
        const std::int32_t q = r * width_ + c;
        if (!inside(q)) continue;
        const float step = (kDy[k] != 0 && kDx[k] != 0) ? kDiagonal : 1.0f;
        if (d + step < distance_[q]) {
          distance_[q] = d + step;
          previous_[q] = p;
          queue.push({distance_[q], q});
        }
      }
    }
    std::int32_t farthest = source;
    for (std::int32_t i = 0; i < count; ++i) {
      const std::int32_t p = members[i];
      if (distance_[p] != kUnreached && (distance_[p] > distance_[farthest] ||
                                         (distance_[p] == distance_[farthest] && p < farthest))) {
        farthest = p;
      }
    }
    return farthest;
  }

  // Appends the path from the last run's source to p.
  void append_path_to(std::int32_t p, Pixels& path) const {
    const std::size_t start = path.size();
    for (; p != -1; p = previous_[p]) path.push_back(p);
    std::reverse(path.begin() + static_cast<std::ptrdiff_t>(start), path.end());
  }

 private:
  static constexpr float kUnreached = std::numeric_limits<float>::infinity();
  int height_, width_;
  std::unique_ptr<float[]> distance_;
  std::unique_ptr<std::int32_t[]> previous_;
};

// The skeleton as a graph: junction clusters joined by branches (runs of pixels with at most two
// skeleton neighbours), pruned and paired into pixel paths, one per device.
class SkeletonGraph {
 public:
  SkeletonGraph(const std::uint8_t* skeleton, int height, int width)
      : skeleton_(skeleton),
        height_(height),
        width_(width),
        cluster_of_(static_cast<std::size_t>(height) * width, -1),
        visited_(static_cast<std::size_t>(height) * width, 0) {
    for (std::int32_t p = 0; p < height * width; ++p) {
      if (skeleton[p]) skeleton_pixels_.push_back(p);
    }
    find_junction_clusters();
    trace_branches();
    absorb_bridges();
    prune_spurs();
    pair_arms();
    choose_straight_joins();
  }

  std::vector<Pixels> pixel_paths() {
    std::vector<Pixels> paths;
    std::vector<std::uint8_t> used(branches_.size(), 0);
    // Open paths first: from every free end, or arm that nothing continues, not yet walked.
    for (int arm = 0; arm < 2 * static_cast<int>(branches_.size()); ++arm) {
      const Branch& branch = branches_[branch_of(arm)];
      if (branch.removed || branch.closed || used[branch_of(arm)] || partner_[arm] != -1) continue;
      paths.push_back(walk(arm, used));
    }
    // What is left are loops: a ring without junctions (opened at its first pixel in raster order),
    // or branches paired around a cycle, opened in the middle of the first branch so that both
    // ends are skeleton pixels and every join lies inside.
    for (int b = 0; b < static_cast<int>(branches_.size()); ++b) {
      if (branches_[b].removed || used[b]) continue;
      Pixels loop = walk(2 * b, used);
      if (!branches_[b].closed) {
        const std::int32_t first_branch_pixels = branches_[b].size - skip(2 * b) - skip(2 * b + 1);
        std::rotate(loop.begin(), loop.begin() + first_branch_pixels / 2, loop.end());
      }
      paths.push_back(std::move(loop));
    }
    // A cluster without arms (a blob of junction pixels, an all-ones image): its longest path.
    for (std::int32_t cluster = 0; cluster < static_cast<std::int32_t>(arms_.size()); ++cluster) {
      if (!arms_[cluster].empty() || cluster_pixel_[cluster] < 0) continue;
      const std::int32_t first_end = search_cluster(cluster, cluster_pixel_[cluster], -1);
      const std::int32_t second_end = search_cluster(cluster, first_end, -1);
      paths.emplace_back();
      search_->append_path_to(second_end, paths.back());
    }
    return paths;
  }

 private:
  int neighbours(std::int32_t p, std::array<std::int32_t, 8>& out) const {
    const int row = p / width_, col = p % width_;
    int count = 0;
    for (int k = 0; k < 8; ++k) {
      const int r = row + kDy[k], c = col + kDx[k];
      if (r < 0 || r >= height_ || c < 0 || c >= width_) continue;
      const std::int32_t q = r * width_ + c;
      if (skeleton_[q]) out[count++] = q;
    }
    return count;
  }

  bool is_junction(std::int32_t p) const { return cluster_of_[p] >= 0; }

  // Junction pixels (>= 3 skeleton neighbours) and their 8-connected clusters: thinning leaves
  // two or three adjacent junction pixels where branches meet, and they are one junction.
  void find_junction_clusters() {
    std::array<std::int32_t, 8> around;
    constexpr std::int32_t kUnlabelled = -2;
    for (const std::int32_t p : skeleton_pixels_) {
      if (neighbours(p, around) >= 3) {
        cluster_of_[p] = kUnlabelled;
        cluster_pixels_.push_back(p);
      }
    }
    Pixels stack;
    for (const std::int32_t start : cluster_pixels_) {
      if (cluster_of_[start] != kUnlabelled) continue;
      const auto cluster = static_cast<std::int32_t>(cluster_pixel_.size());
      cluster_pixel_.push_back(start);
      cluster_of_[start] = cluster;
      stack.push_back(start);
      while (!stack.empty()) {
        const std::int32_t p = stack.back();
        stack.pop_back();
        const int count = neighbours(p, around);
        for (int k = 0; k < count; ++k) {
          if (cluster_of_[around[k]] != kUnlabelled) continue;
          cluster_of_[around[k]] = cluster;
          stack.push_back(around[k]);
        }
      }
    }
    parent_.resize(cluster_pixel_.size());
    for (std::size_t c = 0; c < parent_.size(); ++c) parent_[c] = static_cast<std::int32_t>(c);
  }

  // The next pixel of a branch after `current`, coming from `previous` (-1: none). Branch pixels
  // have at most two skeleton neighbours, so this is unambiguous.
  std::int32_t next_pixel(std::int32_t previous, std::int32_t current) const {
    std::array<std::int32_t, 8> around;
    const int count = neighbours(current, around);
    for (int k = 0; k < count; ++k) {
      if (around[k] != previous) return around[k];
    }
    return -1;
  }

  void trace_branches() {
    for (const std::int32_t seed : skeleton_pixels_) {
      if (is_junction(seed) || visited_[seed]) continue;
      // Walk to one end of the seed's branch...
      std::int32_t previous = -1, end = seed, beyond = next_pixel(-1, seed);
      while (beyond != -1 && !is_junction(beyond) && beyond != seed) {
        previous = end;
        end = beyond;
        beyond = next_pixel(previous, end);
      }
      if (beyond ==
          seed) {  // ...or around its loop: that starts at its first pixel in raster order
        end = seed;
        beyond = -1;
      }
      // ...and collect it from there to the other end.
      Branch branch;
      branch.begin = static_cast<std::int32_t>(branch_pixels_.size());
      set_end(branch, 0, end, beyond);
      previous = beyond;
      std::int32_t current = end;
      while (true) {
        branch_pixels_.push_back(current);
        visited_[current] = 1;
        const std::int32_t next = next_pixel(previous, current);
        if (next == end) {
          branch.closed = true;
          branch.length += step_length(current, next, width_);
          break;
        }
        if (next == -1 || is_junction(next)) {
          set_end(branch, 1, current, next);
          break;
        }
        branch.length += step_length(current, next, width_);
        previous = current;
        current = next;
      }
      branch.size = static_cast<std::int32_t>(branch_pixels_.size()) - branch.begin;
      branches_.push_back(branch);
    }
  }

  void set_end(Branch& branch, int side, std::int32_t last, std::int32_t beyond) const {
    if (beyond == -1 || !is_junction(beyond)) return;
    branch.cluster[side] = cluster_of_[beyond];
    branch.attach[side] = beyond;
    branch.length += step_length(last, beyond, width_);
  }

  std::int32_t root(std::int32_t cluster) {
    while (parent_[cluster] != cluster) {
      parent_[cluster] = parent_[parent_[cluster]];
      cluster = parent_[cluster];
    }
    return cluster;
  }

  // A short branch between junctions (the middle of a shallow crossing, a small hole) becomes part
  // of one merged cluster, so that all arms of the crossing are paired together.
  void absorb_bridges() {
    for (Branch& branch : branches_) {
      if (branch.cluster[0] < 0 || branch.cluster[1] < 0 || branch.length > kMaxBridgeLength) {
        continue;
      }
      const std::int32_t first = root(branch.cluster[0]), second = root(branch.cluster[1]);
      parent_[std::max(first, second)] = std::min(first, second);
      for (std::int32_t i = 0; i < branch.size; ++i) {
        cluster_of_[branch_pixels_[branch.begin + i]] = branch.cluster[0];
        cluster_pixels_.push_back(branch_pixels_[branch.begin + i]);
      }
      branch.removed = true;
    }
    // From here on a pixel's cluster and a branch end's cluster are the merged one.
    for (std::int32_t c = 0; c < static_cast<std::int32_t>(parent_.size()); ++c) {
      if (root(c) != c) cluster_pixel_[c] = -1;
    }
    for (const std::int32_t p : cluster_pixels_) cluster_of_[p] = root(cluster_of_[p]);
    for (Branch& branch : branches_) {
      for (std::int32_t& cluster : branch.cluster) {
        if (cluster >= 0) cluster = root(cluster);
      }
    }
    // Each cluster's pixels, contiguous (counting sort by cluster).
    members_begin_.assign(parent_.size() + 1, 0);
    for (const std::int32_t p : cluster_pixels_) ++members_begin_[cluster_of_[p] + 1];
    for (std::size_t c = 1; c < members_begin_.size(); ++c) {
      members_begin_[c] += members_begin_[c - 1];
    }
    members_.resize(cluster_pixels_.size());
    std::vector<std::int32_t> next(members_begin_.begin(), members_begin_.end() - 1);
    for (const std::int32_t p : cluster_pixels_) members_[next[cluster_of_[p]]++] = p;
  }

  bool is_spur(const Branch& branch) const {
    return (branch.cluster[0] < 0) != (branch.cluster[1] < 0) && branch.length < kMaxSpurLength;
  }

  // Drops spurs, but a cluster keeps its two longest arms, so a fork at the end of a stroke or a
  // small star still gives a path.
  void prune_spurs() {
    arms_.assign(cluster_pixel_.size(), {});
    for (int arm = 0; arm < 2 * static_cast<int>(branches_.size()); ++arm) {
      const Branch& branch = branches_[branch_of(arm)];
      if (!branch.removed && branch.cluster[end_of(arm)] >= 0) {
        arms_[branch.cluster[end_of(arm)]].push_back(arm);
      }
    }
    for (auto& arms : arms_) {
      // Longest first (ties: lower arm), so the arms kept do not depend on their order.
      std::sort(arms.begin(), arms.end(), [&](int a, int b) {
        const float la = branches_[branch_of(a)].length, lb = branches_[branch_of(b)].length;
        return la != lb ? la > lb : a < b;
      });
      std::size_t kept = 0;
      for (std::size_t i = 0; i < arms.size(); ++i) {
        Branch& branch = branches_[branch_of(arms[i])];
        if (kept >= 2 && is_spur(branch)) {
          branch.removed = true;
        } else {
          arms[kept++] = arms[i];
        }
      }
      arms.resize(kept);
      std::sort(arms.begin(), arms.end());
    }
  }

  // Outward unit direction of an arm (see kDirectionSkip).
  std::pair<float, float> direction(int arm) const {
    const Branch& branch = branches_[branch_of(arm)];
    const std::int32_t far = std::min(kDirectionReach, branch.size - 1);
    const std::int32_t from =
        far > kDirectionSkip ? pixel_from_end(arm, kDirectionSkip) : branch.attach[end_of(arm)];
    const std::int32_t to = pixel_from_end(arm, far);
    const float dx = static_cast<float>(to % width_ - from % width_);
    const float dy = static_cast<float>(to / width_ - from / width_);
    const float norm = std::max(std::hypot(dx, dy), 1e-6f);
    return {dx / norm, dy / norm};
  }

  // Pairs the arms of each cluster that continue each other, most nearly straight first. A cluster
  // with two arms is a plain pixel run once spurs are gone: they are paired whatever the bend.
  void pair_arms() {
    partner_.assign(2 * branches_.size(), -1);
    std::vector<std::pair<float, float>> directions;
    // (-cosine, i, j): sorts the straightest first, ties by arm.
    std::vector<std::tuple<float, int, int>> candidates;
    for (const auto& arms : arms_) {
      const int count = static_cast<int>(arms.size());
      if (count == 2) {
        partner_[arms[0]] = arms[1];
        partner_[arms[1]] = arms[0];
      }
      if (count < 3 || count > kMaxPairedArms) continue;
      directions.clear();
      for (const int arm : arms) directions.push_back(direction(arm));
      candidates.clear();
      for (int i = 0; i < count; ++i) {
        for (int j = i + 1; j < count; ++j) {
          // Through-path bend: the angle between one arm and the reverse of the other.
          const float cosine = -(directions[i].first * directions[j].first +
                                 directions[i].second * directions[j].second);
          if (cosine >= kMinThroughCosine) candidates.emplace_back(-cosine, i, j);
        }
      }
      std::sort(candidates.begin(), candidates.end());
      for (const auto& [negative_cosine, i, j] : candidates) {
        if (partner_[arms[i]] != -1 || partner_[arms[j]] != -1) continue;
        partner_[arms[i]] = arms[j];
        partner_[arms[j]] = arms[i];
      }
    }
  }

  // Pixels of a chain of branches, starting with the branch of `start_arm` entered at that end and
  // continuing through the paired arms of each cluster it reaches.
  Pixels walk(int start_arm, std::vector<std::uint8_t>& used) {
    Pixels path;
    const Branch& first = branches_[branch_of(start_arm)];
    if (first.cluster[end_of(start_arm)] >= 0 && partner_[start_arm] == -1) {
      path.push_back(first.attach[end_of(start_arm)]);
    }
    int arm = start_arm;
    while (true) {
      const Branch& branch = branches_[branch_of(arm)];
      const int exit = arm ^ 1;
      used[branch_of(arm)] = 1;
      for (std::int32_t i = skip(arm); i < branch.size - skip(exit); ++i) {
        path.push_back(pixel_from_end(arm, i));
      }
      if (branch.closed || branch.cluster[end_of(exit)] < 0) break;
      const int next = partner_[exit];
      if (next == -1) {
        path.push_back(branch.attach[end_of(exit)]);
        break;
      }
      if (straight_[exit]) {
        append_line_between(path.back(), pixel_from_end(next, skip(next)), path);
      } else {
        const std::int32_t entry = branches_[branch_of(next)].attach[end_of(next)];
        search_cluster(branch.cluster[end_of(exit)], branch.attach[end_of(exit)], entry);
        search_->append_path_to(entry, path);
      }
      if (used[branch_of(next)]) break;  // back at the start of a loop
      arm = next;
    }
    return path;
  }

  // The pixel `steps` pixels into a branch from the end of `arm`.
  std::int32_t pixel_from_end(int arm, std::int32_t steps) const {
    const Branch& branch = branches_[branch_of(arm)];
    return branch_pixels_[branch.begin + (end_of(arm) == 0 ? steps : branch.size - 1 - steps)];
  }

  // Pixels an arm leaves out where it is joined straight across a crossing; a branch keeps at least
  // its middle pixel.
  std::int32_t skip(int arm) const {
    return straight_[arm] ? std::min(kCrossingTrim, (branches_[branch_of(arm)].size - 1) / 2) : 0;
  }

  // Thinning bends every arm towards the junction pixels over about half a stroke width, and at a
  // shallow crossing the junction pixels lie on one catheter only, so the path through a crossing
  // is the straight line between the arms past that bend. Where a cluster is longer than a crossing
  // (two catheters touching along a stretch) or has two arms (a plain run once spurs are gone),
  // the path follows the cluster's skeleton pixels instead.
  void choose_straight_joins() {
    straight_.assign(partner_.size(), 0);
    for (int arm = 0; arm < static_cast<int>(partner_.size()); ++arm) {
      const int other = partner_[arm];
      if (other < arm || arms_[branches_[branch_of(arm)].cluster[end_of(arm)]].size() < 3) {
        continue;
      }
      straight_[arm] = straight_[other] = 1;  // so that skip() gives the trimmed ends
      const std::int32_t from = pixel_from_end(arm, skip(arm));
      const std::int32_t to = pixel_from_end(other, skip(other));
      const float dx = static_cast<float>(from % width_ - to % width_);
      const float dy = static_cast<float>(from / width_ - to / width_);
      straight_[arm] = straight_[other] = std::hypot(dx, dy) <= kMaxStraightJoin;
    }
  }

  // The 8-connected pixels strictly between two pixels on the straight line joining them.
  void append_line_between(std::int32_t from, std::int32_t to, Pixels& path) const {
    const int row = from / width_, col = from % width_;
    const int rows = to / width_ - row, cols = to % width_ - col;
    const int steps = std::max(std::abs(rows), std::abs(cols));
    for (int k = 1; k < steps; ++k) {
      const double t = static_cast<double>(k) / steps;
      path.push_back(static_cast<std::int32_t>((row + std::lround(rows * t)) * width_ + col +
                                               std::lround(cols * t)));
    }
  }

  std::int32_t search_cluster(std::int32_t cluster, std::int32_t source, std::int32_t target) {
    if (!search_) search_ = std::make_unique<ClusterSearch>(height_, width_);
    const std::int32_t begin = members_begin_[cluster];
    return search_->run(source, target, members_.data() + begin,
                        members_begin_[cluster + 1] - begin,
                        [&](std::int32_t q) { return cluster_of_[q] == cluster; });
  }

  const std::uint8_t* skeleton_;
  int height_, width_;
  std::vector<std::int32_t> cluster_of_;     // per pixel: junction cluster (or absorbed bridge); -1
  std::vector<std::uint8_t> visited_;        // per pixel: already in a branch
  Pixels skeleton_pixels_;                   // in raster order
  Pixels cluster_pixels_;                    // junction and absorbed bridge pixels
  Pixels cluster_pixel_;                     // per cluster: one of its pixels; -1 once merged away
  std::vector<std::int32_t> parent_;         // union-find over clusters
  Pixels members_;                           // cluster pixels, grouped by cluster ...
  std::vector<std::int32_t> members_begin_;  // ... from members_begin_[c] to members_begin_[c + 1]
  std::vector<Branch> branches_;
  Pixels branch_pixels_;
  std::vector<std::vector<int>> arms_;  // per cluster: arms after pruning, ascending
  std::vector<int> partner_;            // per arm: the arm it continues into; -1
  std::vector<std::uint8_t> straight_;  // per arm: joined to its partner by a straight line
  std::unique_ptr<ClusterSearch> search_;
};

float path_length(const Pixels& path, int width) {
  float length = 0.0f;
  for (std::size_t i = 1; i < path.size(); ++i) length += step_length(path[i - 1], path[i], width);
  return length;
}

// Moving average over 2*radius+1 pixels, the window shrinking symmetrically at the ends so the end
// points stay where they are. Removes the staircase of the 8-connected pixel path, whose length
// overestimates the true arc length by up to 8 % (at 22.5 degrees); electrode spacing is
// measured along these polylines.
Polyline smooth(const Polyline& line, int radius) {
  const int n = static_cast<int>(line.size());
  Polyline out(line.size());
  for (int i = 0; i < n; ++i) {
    const int k = std::min({radius, i, n - 1 - i});
    float x = 0.0f, y = 0.0f;
    for (int j = i - k; j <= i + k; ++j) {
      x += line[j].x;
      y += line[j].y;
    }
    out[i] = {x / static_cast<float>(2 * k + 1), y / static_cast<float>(2 * k + 1)};
  }
  return out;
}

int distance_to_border(std::int32_t p, int height, int width) {
  const int row = p / width, col = p % width;
  return std::min(std::min(row, height - 1 - row), std::min(col, width - 1 - col));
}

}  // namespace

std::vector<Polyline> trace_centerlines(const std::uint8_t* skeleton, int height, int width,
                                        float min_length) {
  require_image_size(height, width);
  require_finite_non_negative("min_length", min_length);
  std::vector<Polyline> centerlines;
  if (height == 0 || width == 0) return centerlines;
  std::vector<Pixels> paths = SkeletonGraph(skeleton, height, width).pixel_paths();
  std::vector<Pixels> kept;
  for (Pixels& path : paths) {
    if (path.empty() || path_length(path, width) < min_length) continue;
    // Distal end (farther from the border) first; on a tie the smaller raster index.
    const std::int32_t front = path.front(), back = path.back();
    const int border_front = distance_to_border(front, height, width);
    const int border_back = distance_to_border(back, height, width);
    if (border_back > border_front || (border_back == border_front && back < front)) {
      std::reverse(path.begin(), path.end());
    }
    kept.push_back(std::move(path));
  }
  // Raster order of the first pixel, then of the last; the sort is stable for the rest.
  std::stable_sort(kept.begin(), kept.end(), [](const Pixels& a, const Pixels& b) {
    return std::make_pair(a.front(), a.back()) < std::make_pair(b.front(), b.back());
  });
  centerlines.reserve(kept.size());
  for (const Pixels& path : kept) {
    Polyline line;
    line.reserve(path.size());
    for (const std::int32_t p : path) {
      line.push_back({static_cast<float>(p % width), static_cast<float>(p / width)});
    }
    centerlines.push_back(smooth(line, kSmoothingRadius));
  }
  return centerlines;
}

}  // namespace cathtrack::postprocess
