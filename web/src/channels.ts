/** Every WebSocket channel name the app uses, spelt here and nowhere else (the server's list and who
may read each: src/tradesignals/domain/entitlements.py). */

/** New signals fitted to this user's profile (premium), and their fills and closes (`update`). */
export const userSignalsChannel = (userId: number): string => `user:${userId}:signals`;

/** The public feed of closed outcomes (the track record as it is written): a row closes here. */
export const SIGNALS_CHANNEL = "signals";

/** One signal's live state (price, P/L, re-scored probability): the holders of an upgrade to it. */
export const liveChannel = (signalId: string): string => `signal:${signalId}:live`;

/** What the live page subscribes to: the user's own channel (new signals fitted and sized for them)
 * and the public outcomes (a row leaves the list when its signal closes). A channel the server
 * refuses is dropped and the other kept; a frame the page cannot apply makes it refetch over REST. */
export const liveFeed = (userId: number): string[] => [userSignalsChannel(userId), SIGNALS_CHANNEL];
