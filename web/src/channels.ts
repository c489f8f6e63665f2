/** Every WebSocket channel name the app uses, spelt here and nowhere else (the server's list and who
may read each: src/tradesignals/domain/entitlements.py). */

/** New signals fitted to this user's profile (premium). */
export const userSignalsChannel = (userId: number): string => `user:${userId}:signals`;

/** The shared feed: today every new signal (premium); it is becoming the closed outcomes only. */
export const SIGNALS_CHANNEL = "signals";

/** One signal's live state (price, P/L, re-scored probability): the holders of an upgrade to it. */
export const liveChannel = (signalId: string): string => `signal:${signalId}:live`;

/** What the live page subscribes to, in order of preference. The user's own channel first; the shared
 * feed is kept too, and is the fallback when the server refuses the user's channel: any message on
 * either makes the page refetch its fitted list over REST, so a signal seen twice shows once. */
export const liveFeed = (userId: number): string[] => [userSignalsChannel(userId), SIGNALS_CHANNEL];
