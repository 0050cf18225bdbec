package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.agent.LimitChange;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.RoundProgress;
import dev.ferry.proto.coordinator.MigrationReport;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPathConstants;
import javax.xml.xpath.XPathFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.NodeList;

/** The report page and text, from a record made here: what they show, and that nothing in a record injects markup. */
class MigrationReportHtmlTest {
    static final String EVIL = "<script>alert(1)</script>\"'&";

    static MigrationReport report(String vm, int rounds) {
        MigrationRecord.Builder r = MigrationRecord.newBuilder()
                .setMigrationId("op-1")
                .setVm(vm)
                .setSource("host-1")
                .setTarget("host-2")
                .setOptions(MigrationOptions.newBuilder().setDowntimeMs(300).setMaxBandwidthBytesPerSec(8 << 20))
                .setStartedAtMs(1_700_000_000_000L)
                .setFinishedAtMs(1_700_000_004_000L);
        for (int i = 0; i < rounds; i++) {
            r.addRounds(RoundProgress.newBuilder()
                    .setRound(i)
                    .setPagesSent(1000 - 100L * i)
                    .setBytesSent((1000 - 100L * i) * 4096)
                    .setDirtyRateBytesPerSec(5_000_000L + i)
                    .setBandwidthBytesPerSec(i < 2 ? 8 << 20 : 64 << 20)
                    .setRemainingBytes(40_000_000L >> i)
                    .setMaxBandwidthLimitBytesPerSec(i < 2 ? 8 << 20 : 64 << 20)
                    .setDowntimeLimitMs(300));
        }
        r.addLimitChanges(LimitChange.newBuilder()
                .setRound(2)
                .setElapsedMs(1500)
                .setDowntimeMs(300)
                .setMaxBandwidthBytesPerSec(64 << 20));
        r.addMessages("forcing the switchover: " + EVIL);
        r.setSummary(MigrationSummary.newBuilder()
                .setMigrationId("op-1")
                .setVm(vm)
                .setSource("host-1")
                .setTarget("host-2")
                .setStatus(MigrationPhase.MIGRATION_PHASE_COMPLETED)
                .setTotalMs(4000)
                .setDowntimeMs(50)
                .setFinalPagesMs(20)
                .setDeviceStateMs(15)
                .setCommitMs(5)
                .setResumeMs(4)
                .setRounds(rounds));
        return MigrationReport.newBuilder()
                .setRecord(r)
                .setKeptBy("host-1")
                .setNote(EVIL)
                .build();
    }

    static Document parse(String html) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(false);
        f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false);
        return f.newDocumentBuilder().parse(new ByteArrayInputStream(html.getBytes(StandardCharsets.UTF_8)));
    }

    static int count(Document d, String xpath) throws Exception {
        return ((NodeList) XPathFactory.newInstance().newXPath().evaluate(xpath, d, XPathConstants.NODESET))
                .getLength();
    }

    @Test
    void thePageHasEveryChartWithOnePointPerRoundAndThePauseBySteps() throws Exception {
        Document d = parse(MigrationReportHtml.render(report("web", 6)));
        // Dirty rate and measured bandwidth: a point each per round; the limit is a line.
        assertEquals(12, count(d, "//*[@id='chart-rates']/*[local-name()='circle'][@class='pt']"));
        assertEquals(6, count(d, "//*[@id='chart-remaining']/*[local-name()='circle'][@class='pt']"));
        assertEquals(6, count(d, "//*[@id='chart-pages']/*[local-name()='rect'][@class='pt']"));
        // final pages, device state, commit, resume, other (50 - 44 = 6 ms)
        assertEquals(5, count(d, "//*[@id='chart-pause']/*[local-name()='rect'][@class='pt']"));
        assertEquals(
                "6",
                XPathFactory.newInstance()
                        .newXPath()
                        .evaluate("//*[@id='chart-pause']/*[@data-step='other']/@data-value", d));
        // The limit change is marked on the per-round charts, at round 2.
        assertEquals(1, count(d, "//*[@id='chart-rates']/*[@class='limit-change'][@data-round='2']"));
        assertEquals(1, count(d, "//*[@id='chart-rates']/*[@data-series='bandwidth limit']"));
        assertEquals(6, count(d, "//*[@id='rounds']/tr") - 1);
        assertEquals(
                "40000000",
                XPathFactory.newInstance()
                        .newXPath()
                        .evaluate("//*[@id='chart-remaining']/*[@data-round='0']/@data-value", d));
    }

    @Test
    void nothingFromTheRecordBecomesMarkupAndNothingLoadsFromAnywhere() throws Exception {
        String html = MigrationReportHtml.render(report(EVIL, 3));
        assertFalse(html.contains("<script"), html);
        assertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"), html);
        Document d = parse(html); // well-formed despite the quotes and ampersands
        assertEquals(0, count(d, "//*[local-name()='script']"));
        for (String attr : new String[] {"src", "href"}) {
            assertEquals(0, count(d, "//*[@" + attr + "]"), attr);
        }
        assertFalse(html.contains("http://")
                && html.replace("http://www.w3.org/", "").contains("http://"));
        assertFalse(html.contains("https://"));
    }

    @Test
    void aRecordWithoutRoundsStillRendersAndSaysSo() throws Exception {
        MigrationReport r = MigrationReport.newBuilder()
                .setRecord(MigrationRecord.newBuilder().setMigrationId("op-2").setVm("web"))
                .setNote("no rounds: host-1 is not alive")
                .build();
        Document d = parse(MigrationReportHtml.render(r));
        assertEquals(0, count(d, "//*[@class='pt']"));
        assertEquals(4, count(d, "//*[local-name()='svg']"));
    }

    @Test
    void theTextShowsEveryRoundTheLimitChangeAtItsRoundAndThePauseBySteps() {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        ReportView.printText(report("web", 4), new PrintStream(b, true, StandardCharsets.UTF_8));
        String text = b.toString(StandardCharsets.UTF_8);
        String[] lines = text.split("\n");
        int header = -1;
        int change = -1;
        int round2 = -1;
        for (int i = 0; i < lines.length; i++) {
            if (lines[i].startsWith("ROUND")) {
                header = i;
            } else if (lines[i].contains("limits changed in round 2")) {
                change = i;
            } else if (lines[i].matches("\\s+2\\s+800\\s.*")) {
                round2 = i;
            }
        }
        assertTrue(header >= 0 && change > header && round2 == change + 1, text);
        assertTrue(
                text.contains(
                        "pause 50 ms: final pages 20 ms, device state 15 ms, commit 5 ms, resume 4 ms, other 6 ms"),
                text);
        assertTrue(text.contains("bandwidth 8.0 MiB/s"), text);
    }

    @Test
    void niceCeilingRoundsUpToOneTwoOrFive() {
        assertEquals(1, MigrationReportHtml.niceCeiling(1));
        assertEquals(50, MigrationReportHtml.niceCeiling(41));
        assertEquals(200, MigrationReportHtml.niceCeiling(101));
        assertEquals(1000, MigrationReportHtml.niceCeiling(501));
    }
}
