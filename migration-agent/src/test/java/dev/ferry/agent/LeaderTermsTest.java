package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.LeaderTerms.Verdict;
import dev.ferry.testing.Timing;
import io.grpc.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The agent's side of leader terms: a deposed coordinator leader's orders are refused. */
class LeaderTermsTest {
    @TempDir
    Path data;

    @Test
    void theRuleRefusesOlderTermsAndTermlessOrdersInAClusterOnly() {
        assertEquals(Verdict.ACCEPT_NEWER, LeaderTerms.judge(true, 0, 1));
        assertEquals(Verdict.ACCEPT, LeaderTerms.judge(true, 4, 4));
        assertEquals(Verdict.ACCEPT_NEWER, LeaderTerms.judge(true, 4, 9));
        assertEquals(Verdict.REFUSE_OLDER, LeaderTerms.judge(true, 4, 3));
        assertEquals(Verdict.REFUSE_WITHOUT_TERM, LeaderTerms.judge(true, 4, 0));
        assertEquals(Verdict.REFUSE_WITHOUT_TERM, LeaderTerms.judge(true, 0, 0));
        // Standalone: an operator's CLI talks to the agent directly, without a term.
        assertEquals(Verdict.ACCEPT, LeaderTerms.judge(false, 0, 0));
        assertEquals(Verdict.ACCEPT, LeaderTerms.judge(false, 4, 0));
        assertEquals(Verdict.REFUSE_OLDER, LeaderTerms.judge(false, 4, 3));
    }

    @Test
    void aDeposedLeadersOrderIsRefusedWithBothTermsNamed() throws Exception {
        LeaderTerms terms = LeaderTerms.open(data, true);
        assertEquals("stopped", terms.order(5, "StopVm v", () -> "stopped"));
        AtomicBoolean ran = new AtomicBoolean();
        AgentException refused =
                assertThrows(AgentException.class, () -> terms.order(3, "StopVm v", () -> ran.getAndSet(true)));
        assertEquals(Status.Code.FAILED_PRECONDITION, refused.code());
        assertTrue(refused.getMessage().contains("StopVm v"), refused.getMessage());
        assertTrue(refused.getMessage().contains("term 3"), refused.getMessage());
        assertTrue(refused.getMessage().contains("term 5"), refused.getMessage());
        assertFalse(ran.get(), "the refused order did not run");
        assertEquals(5, terms.newest());
    }

    @Test
    void anAgentRestartedAfterSeeingANewerTermStillRefusesTheDeposedLeader() throws Exception {
        LeaderTerms before = LeaderTerms.open(data, true);
        before.order(7, "CreateVm v", () -> null);

        LeaderTerms after = LeaderTerms.open(data, true); // the agent process started again
        assertEquals(7, after.newest());
        AgentException refused = assertThrows(AgentException.class, () -> after.order(6, "StartVm v", () -> null));
        assertEquals(Status.Code.FAILED_PRECONDITION, refused.code());
        assertEquals("7", Files.readString(data.resolve(LeaderTerms.FILE)).trim());
    }

    @Test
    void anUnreadableTermRecordFailsTheStartInsteadOfForgettingTheTerm() throws Exception {
        Files.writeString(data.resolve(LeaderTerms.FILE), "seven\n");
        assertThrows(java.io.IOException.class, () -> LeaderTerms.open(data, true));
    }

    @Test
    void aClusterAgentRefusesAnOrderWithoutATermAndAStandaloneOneTakesIt() throws Exception {
        AgentException refused = assertThrows(
                AgentException.class, () -> LeaderTerms.open(data, true).order(0, "DeleteVm v", () -> null));
        assertEquals(Status.Code.FAILED_PRECONDITION, refused.code());
        assertEquals("ok", LeaderTerms.open(data, false).order(0, "DeleteVm v", () -> "ok"));
    }

    @Test
    void anOrderOfTheOldTermInProgressFinishesBeforeTheNewTermIsTakenAndNoneBeginsAfter() throws Exception {
        LeaderTerms terms = LeaderTerms.open(data, true);
        terms.order(1, "CreateVm v", () -> null);
        CountDownLatch inOldOrder = new CountDownLatch(1);
        CountDownLatch finishOldOrder = new CountDownLatch(1);
        // Threads of their own (the common pool may have a single worker on a small machine).
        ExecutorService threads =
                Executors.newThreadPerTaskExecutor(Thread.ofPlatform().factory());
        CompletableFuture<Void> old = CompletableFuture.runAsync(
                () -> {
                    try {
                        terms.order(1, "StopVm v", () -> {
                            inOldOrder.countDown();
                            try {
                                finishOldOrder.await(Timing.seconds(30).toMillis(), TimeUnit.MILLISECONDS);
                            } catch (InterruptedException e) {
                                throw new AgentException(Status.Code.CANCELLED, "interrupted");
                            }
                            return null;
                        });
                    } catch (AgentException e) {
                        throw new IllegalStateException(e);
                    }
                },
                threads);
        assertTrue(inOldOrder.await(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS));
        AtomicBoolean newRan = new AtomicBoolean();
        CompletableFuture<Void> newer = CompletableFuture.runAsync(
                () -> {
                    try {
                        terms.order(2, "StartVm v", () -> newRan.getAndSet(true));
                    } catch (AgentException e) {
                        throw new IllegalStateException(e);
                    }
                },
                threads);
        Timing.await("the new term's order waiting", Duration.ofSeconds(10), terms::ordersWaiting);
        assertFalse(newRan.get(), "the new term waits for the old term's order in progress");

        finishOldOrder.countDown();
        old.get(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS);
        newer.get(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS);
        assertTrue(newRan.get());
        assertThrows(AgentException.class, () -> terms.order(1, "StopVm v", () -> null));
        threads.close();
    }
}
